"""Atomic file and directory writes: readers never see half-written outputs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

# zip entries carry a modification time; a fixed one keeps identical arrays byte-identical on disk
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


# A temporary is named ``.NAME.<pid>.<random><suffix>`` beside its target NAME: the writer's process id lets
# the next write to NAME remove what a killed writer (SIGKILL, SIGTERM, power loss) left behind.


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this machine); an unknowable answer counts as alive."""
    if pid <= 0:  # 0 and negative ids signal process groups: never ours
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's process; not a process id
        return True
    return True


def _remove_stale_temporaries(path: Path, suffix: str) -> None:
    """Remove the temporaries of ``path`` (files or folders) whose writing process no longer runs."""
    prefix = f".{path.name}."
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)\.[a-z0-9_]+{re.escape(suffix)}")  # tempfile's random part
    try:
        entries = [e for e in os.scandir(path.parent) if e.name.startswith(prefix)]
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".tmp" + path.suffix  # the target's own suffix last: writers that pick a format by it keep working
    _remove_stale_temporaries(path, suffix)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``path``; it replaces ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path, ".tmp")
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def file_md5(path: str | Path) -> str:
    """The md5 of a file's bytes, read in chunks (what DVC records for a file)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks (with the CPU's SHA instructions, 2.5x md5's speed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez`` with reproducible bytes, written atomically.

    ``np.savez`` stamps every member with the current time, so the same arrays hashed differently
    on every run and DVC re-ran every stage downstream. Here members are stored (uncompressed, as
    ``np.savez`` does) in the given order with a fixed time stamp; ``np.load`` reads the result.
    """
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
