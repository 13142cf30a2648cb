"""A command's output files: checked before the work starts, committed together after it.

:func:`check_output` fails in milliseconds on what would otherwise fail after a long render: a path
that is a folder, a folder that cannot be written, a suffix no writer knows, a name too long for the
file system once the temporary suffix of :mod:`pipeline.io` is added. :func:`all_or_nothing` makes
the outputs of one command one unit: if any later step fails, those already written are taken back
(new files removed, replaced ones restored), so a failed command leaves what was there before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipeline.errors import PipelineError

AUDIO_SUFFIXES = (".wav", ".flac")  # what pipeline.audio.write_audio writes
TEMPORARY_RESERVE = 40  # characters pipeline.io's temporaries add to a name (dot, pid, random part, ".tmp")


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def check_output(path: Path | str, suffixes: Sequence[str] | None = None, what: str = "output") -> Path:
    """``path`` if a file can be written there (see the module docstring), else a PipelineError naming it."""
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        known = " or ".join(suffixes)
        found = f"suffix {path.suffix!r}" if path.suffix else "no suffix"
        raise PipelineError(f"{what} has {found} (expected {known})", path)
    if path.is_dir():
        raise PipelineError(f"{what} is a folder, not a file", path)
    folder = path.parent if str(path.parent) else Path(".")
    existing = folder
    while not existing.exists():  # atomic_path creates missing folders: the first existing one must allow it
        existing = existing.parent
    if not existing.is_dir():
        raise PipelineError(f"{what}'s folder {existing} is a file", path)
    try:  # a probe, not os.access: root passes every permission check, a read-only file system does not
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise PipelineError(f"{what}'s folder {existing} is not writable ({err.strerror})", path) from None
    if len(path.name.encode()) + TEMPORARY_RESERVE > _name_max(existing):
        raise PipelineError(
            f"{what}'s name is {len(path.name.encode())} bytes; with the temporary suffix it would pass the file "
            f"system's {_name_max(existing)}: use a shorter name",
            path,
        )
    return path


@contextlib.contextmanager
def all_or_nothing(paths: Sequence[Path | str | None]) -> Iterator[None]:
    """Outputs ``paths`` (None: not asked for) written in the block are kept only if the whole block
    succeeds; otherwise each is restored to what it was before (removed if it did not exist)."""
    targets = [Path(p) for p in paths if p is not None]
    backups: dict[Path, Path] = {}  # output -> a second name for its old bytes
    for target in targets:
        if target.is_file():
            copy = target.with_name(f".{target.name}.{os.getpid()}.bak")
            copy.unlink(missing_ok=True)
            try:
                os.link(target, copy)  # atomic_path's rename onto the target leaves this name alone
            except OSError:  # a file system without hard links
                shutil.copy2(target, copy)
            backups[target] = copy
    try:
        yield
    except BaseException:
        for target in targets:
            if target in backups:
                os.replace(backups[target], target)
            else:
                target.unlink(missing_ok=True)
        raise
    for copy in backups.values():
        copy.unlink(missing_ok=True)
