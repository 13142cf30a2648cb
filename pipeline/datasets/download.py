"""Resumable, verified downloads and safe zip extraction (standard library only).

``download`` streams a URL into ``<dest>.part``, resumes an interrupted ``.part`` with an HTTP
Range request, retries transient network faults, checks size and checksum, and only then
renames the file onto ``dest``: ``dest`` is either absent or complete and verified.

``extract_zip`` checks every member before writing anything (no absolute paths, no ``..``,
no symlinks) and extracts into a temporary folder that replaces the target only on success.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import stat
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import unquote, urlparse

from tqdm import tqdm

from pipeline.errors import PipelineError
from pipeline.io import atomic_dir

USER_AGENT = "deep-performer/0.1 (+urllib)"
TIMEOUT_S = 60.0
# Faults worth another try (the server or the network dropped us); the .part file is kept
TRANSIENT = (
    ConnectionError,  # includes ConnectionResetError, BrokenPipeError, RemoteDisconnected
    TimeoutError,
    socket.timeout,
    http.client.IncompleteRead,
    http.client.BadStatusLine,
    urllib.error.ContentTooShortError,
)


class _Truncated(Exception):
    """The server closed the stream before sending everything it announced."""


def url_filename(url: str, default: str = "download") -> str:
    """The last path component of ``url`` (percent-decoded), e.g. ``maestro-v3.0.0.zip``."""
    name = PurePosixPath(unquote(urlparse(url).path)).name
    return name or default


def file_digest(path: str | Path, algorithm: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, url: str, sha256: str | None, md5: str | None, size: int | None) -> str | None:
    """None when ``path`` matches every expectation given, else a description of the first mismatch."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size mismatch for {url}: expected {size} bytes, got {actual_size}"
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            actual = file_digest(path, algorithm)
            if actual.lower() != expected.strip().lower():
                return f"{algorithm} mismatch for {url}: expected {expected.strip().lower()}, got {actual}"
    return None


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a ``Content-Range: bytes a-b/total`` header (None when unknown)."""
    if not header:
        return None, None
    match = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", header)
    if not match:
        return None, None
    first = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return first, total


def _fetch(url: str, part: Path, chunk: int, desc: str) -> None:
    """One attempt: append the rest of ``url`` to ``part`` (restarting it when the server ignores Range)."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # Nothing left past our offset: either the .part is complete or it is longer than the file
            _, total = _content_range(err.headers.get("Content-Range"))
            err.close()
            if total is not None and total == offset:
                return
            part.unlink(missing_ok=True)
            raise ConnectionError("server refused the resume offset; restarting from scratch") from err
        if err.code in (408, 425, 429) or err.code >= 500:
            raise ConnectionError(f"HTTP {err.code} {err.reason}") from err
        raise PipelineError(f"download failed: HTTP {err.code} {err.reason} for {url}") from err
    with response:
        status = getattr(response, "status", None) or 200
        if offset and status == 206:
            first, total = _content_range(response.headers.get("Content-Range"))
            if first is not None and first != offset:
                raise PipelineError(f"download failed: server resumed {url} at byte {first}, asked for {offset}")
            mode = "ab"
        else:  # a full answer (200, or a file:// URL): start over
            offset, mode = 0, "wb"
            total = None
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        if total is None and expected is not None:
            total = offset + expected
        received = 0
        with (
            open(part, mode) as fh,
            tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False
            ) as bar,
        ):
            while True:
                block = response.read(chunk)
                if not block:
                    break
                fh.write(block)
                received += len(block)
                bar.update(len(block))
    if expected is not None and received < expected:
        raise _Truncated(f"connection closed after {received} of {expected} bytes")


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    chunk: int = 1 << 20,
    retries: int = 5,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest`` (resuming, retrying, verifying); returns ``dest``.

    A ``dest`` that already exists and verifies is kept as it is. On a size or checksum mismatch
    the download is deleted and a PipelineError names the URL and the expected and actual values.
    ``retries`` counts consecutive attempts that made no progress; ``backoff`` seconds doubles
    between them.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    if dest.exists():
        if _check(dest, url, sha256, md5, size) is None:
            return dest
        dest.unlink()  # stale or corrupt: fetch it again
    if size is not None and part.exists() and part.stat().st_size > size:
        part.unlink()

    failures = 0
    while True:
        before = part.stat().st_size if part.exists() else 0
        if size is not None and before == size:
            break  # a complete .part left by an earlier run
        try:
            _fetch(url, part, chunk, desc=dest.name)
            break
        except (_Truncated, *TRANSIENT, urllib.error.URLError) as err:
            if isinstance(err, urllib.error.URLError) and not isinstance(
                err.reason, (ConnectionError, TimeoutError, socket.timeout, OSError)
            ):
                raise PipelineError(f"download failed: {err.reason} for {url}") from err
            after = part.stat().st_size if part.exists() else 0
            failures = 0 if after > before else failures + 1
            if failures > retries:
                raise PipelineError(
                    f"download failed after {retries + 1} attempts without progress: {err} for {url} "
                    f"(the partial file {part} is kept; run again to resume)"
                ) from err
            if failures:
                time.sleep(backoff * 2 ** (failures - 1))

    problem = _check(part, url, sha256, md5, size)
    if problem is not None:
        part.unlink(missing_ok=True)
        raise PipelineError(f"{problem}; the download was deleted", dest)
    os.replace(part, dest)
    return dest


# ----------------------------------------------------------------------------- extraction


def _member_problem(info: zipfile.ZipInfo, root: Path) -> str | None:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if "\x00" in name:
        return "has a NUL byte in its name"
    windows = PureWindowsPath(name)
    if name.startswith(("/", "\\")) or windows.drive or windows.root:
        return "has an absolute path"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "climbs out of the target folder ('..')"
    resolved = (root / name).resolve()
    if resolved != root and root not in resolved.parents:
        return "resolves outside the target folder"
    return None


def extract_zip(archive: str | Path, target: str | Path) -> Path:
    """Extract ``archive`` into ``target`` (replacing it) after checking every member; returns ``target``.

    Absolute paths, ``..`` components and symlinks are refused with a PipelineError naming the
    archive and the member, before anything is written. Extraction goes into a temporary folder
    beside ``target`` that is renamed onto it only when every member has been written, so an
    interrupted or failed extraction leaves no partial output.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise PipelineError("archive not found", archive)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise PipelineError(f"not a readable zip archive ({err})", archive) from err
    with zf:
        infos = zf.infolist()
        probe = (target.parent.resolve() / f".{target.name}.check").resolve()
        for info in infos:
            problem = _member_problem(info, probe)
            if problem is not None:
                raise PipelineError(f"refusing to extract member {info.filename!r}: it {problem}", archive)
        files = [i for i in infos if not i.is_dir()]
        with atomic_dir(target) as tmp:
            try:
                for info in tqdm(files, desc=f"extract {archive.name}", unit="file", leave=False):
                    zf.extract(info, tmp)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError) as err:
                raise PipelineError(f"extraction failed at member {info.filename!r} ({err})", archive) from err
            for info in infos:
                if info.is_dir():
                    (tmp / info.filename).mkdir(parents=True, exist_ok=True)
    return target


def find_dataset_root(root: Path, marker: str) -> Path:
    """``root`` itself, or the single folder one or two levels below it, that holds ``marker``."""
    if (root / marker).is_file():
        return root
    if not root.is_dir():
        raise PipelineError("dataset folder not found", root)
    found = sorted(p.parent for p in root.glob(f"*/{marker}")) or sorted(p.parent for p in root.glob(f"*/*/{marker}"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise PipelineError(f"no {marker} in this folder or the ones below it (not an extracted dataset?)", root)
    raise PipelineError(f"several {marker} below this folder ({', '.join(map(str, found))}): point at one", root)


def fetch_archive(url: str, download_dir: Path, sha256: str | None = None, md5: str | None = None) -> Path:
    """Download (resuming, verified) and extract ``url`` under ``download_dir``; returns the extracted folder."""
    name = url_filename(url, default="dataset.zip")
    extracted = download_dir / (name[:-4] if name.lower().endswith(".zip") else name + ".extracted")
    if extracted.is_dir():  # extraction is atomic: the folder exists only complete
        return extracted
    archive = download(url, download_dir / name, sha256=sha256, md5=md5)
    return extract_zip(archive, extracted)
