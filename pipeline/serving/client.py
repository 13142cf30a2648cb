"""Where a render server listens, and how `performer render` hands it a job.

A server (`performer serve`, :mod:`pipeline.serving.server`) listens on a Unix socket whose name is
derived from the absolute paths of its models folder and parameter file, in a folder only its user
can enter (``$XDG_RUNTIME_DIR/deep-performer``, else ``<temp>/deep-performer-<uid>``; mode 0700,
the socket 0600). So `performer render` finds the server of *its* models and parameters by name,
with one ``stat``, and no other user can reach it or stand in for it.

The exchange is one JSON line each way: the request (:class:`~pipeline.serving.job.RenderRequest`
with absolute paths, the backend options and the protocol version), then the answer: ``done``
(the files are written), ``error`` (the one line the command would have printed) or ``declined``
(the server cannot render it exactly as the command would: the command renders itself and says why).

Standard library only: when no server runs, finding that out costs the command a few system calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.serving.job import RenderDone, RenderRequest

PROTOCOL = 1
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux, 104 on macOS
CONNECT_TIMEOUT_S = 2.0


def runtime_dir() -> Path:
    """The folder of this user's render sockets."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        return Path(base) / "deep-performer"
    return Path(tempfile.gettempdir()) / f"deep-performer-{os.getuid()}"


def check_private_dir(path: Path, create: bool = False) -> bool:
    """Whether ``path`` is a folder only this user can enter (created so with ``create``; False when it
    does not exist). A folder anyone else could have made or can write is a PipelineError: a server
    there could be someone else's."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)  # exists already: made by a server starting beside this one
        info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise PipelineError("the render servers' folder is not a folder (remove it)", path)
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PipelineError(
            f"the render servers' folder belongs to uid {info.st_uid} with mode {stat.S_IMODE(info.st_mode):o}, "
            f"not to this user (uid {os.getuid()}) alone: remove it",
            path,
        )
    return True


def socket_path(models: Path, params: Path) -> Path:
    """The socket of the server for the models folder ``models`` and the parameter file ``params``."""
    key = f"{models.absolute()}\n{params.absolute()}".encode()
    path = runtime_dir() / f"render-{hashlib.sha256(key).hexdigest()[:16]}.sock"
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        raise PipelineError(
            f"the render socket's path is {len(os.fsencode(path))} bytes, over the {SOCKET_PATH_MAX} a Unix socket "
            "allows: set XDG_RUNTIME_DIR or TMPDIR to a shorter folder",
            path,
        )
    return path


def send_line(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def read_line(conn: socket.socket, limit: int = 1 << 20) -> dict[str, Any] | None:
    """One JSON object sent by :func:`send_line`; None when the other end closed first."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > limit:
            raise PipelineError(f"a message over {limit} bytes")
    try:
        message = json.loads(data)
    except ValueError:
        raise PipelineError("a message that is not JSON") from None
    if not isinstance(message, dict):
        raise PipelineError("a message that is not a JSON object")
    return message


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def ask_server(
    models: Path, params: Path, request: RenderRequest, options: dict[str, Any], say: Callable[[str], None] = _say
) -> RenderDone | None:
    """The files of ``request`` rendered and written by the running server of ``models`` and ``params``;
    None when there is none or it declined (then ``say`` gets the reason: the caller renders itself).

    ``options``: ``backend``, ``device`` and ``threads`` (None: the server's) as the command got them;
    the server renders only what it would render exactly as the command. A fault of the request is a
    PipelineError with the command's own line (the user's paths, not the absolute ones sent)."""
    path = socket_path(models, params)
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return None
    except FileNotFoundError:
        return None
    try:
        check_private_dir(path.parent)
    except PipelineError as err:  # not this user's own folder: whoever listens there is not asked
        say(f"warning: rendering here, not on a render server: {err}")
        return None
    absolute = request.absolute()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(CONNECT_TIMEOUT_S)
        try:
            conn.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
            return None  # the socket of a server that is gone (killed) or busy starting: render here
        conn.settimeout(None)  # a long score renders for as long as it takes; Ctrl-C still stops the wait
        send_line(conn, {"protocol": PROTOCOL, "request": asdict(absolute), "options": options})
        answer = read_line(conn)
    finally:
        conn.close()
    if answer is None:
        say(f"rendering here: the render server on {path} closed the connection")
        return None
    for warning in answer.get("warnings", []):
        say(f"warning: {warning}")
    for note in answer.get("notes", []):
        say(note)
    if "declined" in answer:
        say(f"rendering here, not on the render server: {answer['declined']}")
        return None
    if "error" in answer:
        line = str(answer["error"])
        for name in RenderRequest.PATHS:  # the user's own spelling of each path, as the command alone says it
            given, sent = getattr(request, name), getattr(absolute, name)
            if given is not None and sent != given:
                line = line.replace(sent, given)
        raise PipelineError(line)
    done = answer.get("done")
    if not isinstance(done, dict):
        raise PipelineError(f"the render server sent an answer this command does not know: {answer}", path)
    return RenderDone(**done)
