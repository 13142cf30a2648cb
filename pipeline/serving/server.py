"""`performer serve`: a process that keeps one models folder loaded, so that `performer render` of
those models pays for its own start and the rendering, not for importing onnxruntime (or torch),
loading three models and warming them up each time (docs/benchmarks.md, "Render command").

What the server guarantees:

* **Same bytes.** It renders with the functions the command runs alone (:mod:`pipeline.serving.job`)
  and only what it would render exactly as the command: the same ``--backend``, ``--device`` and
  ``--threads``; anything else is declined and the command renders itself.
* **Never stale.** Before each job it compares the ``model.pt`` files, the ONNX export and the
  parameter file (inode, size, modification time) with what it loaded and loads again when one
  changed, choosing the backend again as the command would (a stale export falls back to torch,
  saying so on the command's stderr). When a source file of the pipeline it runs has changed since
  it started, it declines the job and stops: its code is no longer the command's.
* **Only its user.** A Unix socket (mode 0600) in a folder of mode 0700 (:mod:`pipeline.serving.client`);
  a peer of another uid is refused where the system says who it is (``SO_PEERCRED``).
* **No half-written files.** The files are written as the command writes them (temporary, then
  rename; all or none); a command that was interrupted while its job rendered gets no files.
* **It goes away.** After ``idle_timeout_s`` without a job (default 30 min), on Ctrl-C or SIGTERM,
  removing its socket. A socket left by a killed server is found dead and replaced.

One job at a time: commands that come together wait in the socket's queue.
"""

from __future__ import annotations

import os
import select
import socket
import stat
import struct
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError
from pipeline.failures import describe
from pipeline.serving.client import PROTOCOL, check_private_dir, read_line, send_line, socket_path
from pipeline.serving.job import (
    BACKENDS,
    IDLE_TIMEOUT_S,
    RENDER_THREADS,
    RenderRequest,
    check_loudness,
    choose_backend,
    is_models_folder,
    load_bundle,
    read_request_score,
    render_files,
)

if TYPE_CHECKING:
    from pipeline.inference.bundle import ModelBundle

POLL_S = 0.5  # how often the waiting loop looks at the idle clock and at stop()
REQUEST_TIMEOUT_S = 5.0  # for the request line, which a client sends as soon as it connects
WARM_UP_NOTES = 8  # a first render allocates onnxruntime's memory arenas: 0.07 s the first job would pay


class ClientGone(Exception):
    """The command that sent the job stopped waiting for it (Ctrl-C, killed)."""


def _log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


def _peer_uid(conn: socket.socket) -> int | None:
    option = getattr(socket, "SO_PEERCRED", None)  # Linux; elsewhere the folder's mode is the guard
    if option is None:
        return None
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    return uid


def _check_client(conn: socket.socket) -> None:
    """ClientGone when the client has closed its end (its socket reads as end-of-file)."""
    readable, _, _ = select.select([conn], [], [], 0)
    if readable:
        try:
            gone = conn.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            gone = True
        if gone:
            raise ClientGone()


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def pipeline_sources(known: dict[str, int] | None = None) -> dict[str, int]:
    """Modification times of the source files of every ``pipeline`` module imported so far (``known``'s
    entries kept as they are: a module imported later is stamped when first seen)."""
    stamps = dict(known or {})
    for module in list(sys.modules.values()):
        name, file = getattr(module, "__name__", ""), getattr(module, "__file__", None)
        if (name == "pipeline" or name.startswith("pipeline.")) and file and file not in stamps:
            with_stamp = _file_stamp(Path(file))
            if with_stamp is not None:
                stamps[file] = with_stamp[2]
    return stamps


def changed_source(stamps: dict[str, int]) -> str | None:
    """The first source file in ``stamps`` that changed or went away since it was stamped."""
    for file, mtime in stamps.items():
        now = _file_stamp(Path(file))
        if now is None or now[2] != mtime:
            return file
    return None


class RenderServer:
    """Keeps the models of the folder ``models`` (for the parameter file ``params``) loaded and renders
    the jobs `performer render` sends to its socket (:func:`pipeline.serving.client.socket_path`).

    ``start()`` loads, warms up and binds; ``serve()`` answers jobs until idle, ``stop()``, Ctrl-C or
    SIGTERM; ``close()`` (or leaving the ``with`` block) removes the socket."""

    def __init__(
        self,
        models: Path,
        params: Path,
        *,
        backend: str = "auto",
        device: str = "auto",
        threads: int = RENDER_THREADS,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        log: Callable[[str], None] = _log,
    ) -> None:
        if backend not in BACKENDS:
            raise PipelineError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if threads < 1:
            raise PipelineError(f"--threads must be at least 1, not {threads}")
        if not is_models_folder(str(models)):
            raise PipelineError(
                "not a models folder (`performer serve` keeps a folder of the training stages' outputs loaded; "
                "registered models render with `performer render --models models:/...`)",
                models,
            )
        self.models, self.params = Path(models), Path(params)
        self.backend, self.device, self.threads = backend, device, threads
        self.idle_timeout_s = idle_timeout_s
        self.log = log
        self.socket = socket_path(self.models, self.params)
        self.kind = ""  # "onnx" or "torch": what the loaded models run on
        self.jobs = 0
        self._bundle: ModelBundle | None = None
        self._loaded_stamp: tuple[Any, ...] | None = None
        self._load_notes: list[str] = []  # what the command says on stderr when it loads these models itself
        self._sources: dict[str, int] = {}
        self._listener: socket.socket | None = None
        self._socket_inode: int | None = None
        self._stopping = False

    # -- lifecycle

    def start(self) -> None:
        check_private_dir(self.socket.parent, create=True)
        self._refuse_a_running_server()
        self._load()
        self._warm_up()
        self._sources = pipeline_sources()
        self._bind()

    def serve(self) -> None:
        """Answer jobs, one at a time, until ``idle_timeout_s`` passes without one (<= 0: never) or stop()."""
        if self._listener is None:
            raise RuntimeError("start() the server first")
        last_job = time.monotonic()
        while not self._stopping:
            idle = time.monotonic() - last_job
            if self.idle_timeout_s > 0 and idle >= self.idle_timeout_s:
                self.log(f"no job for {idle / 60:.0f} min: stopping")
                break
            ready, _, _ = select.select([self._listener], [], [], POLL_S)
            if not ready:
                continue
            conn, _ = self._listener.accept()
            with conn:
                self._handle(conn)
            last_job = time.monotonic()

    def run(self) -> int:
        """start(), say where it serves, serve() and close(): `performer serve`. Returns the jobs it rendered."""
        with self:
            self.start()
            threads = f"{self.threads} thread{'s' * (self.threads > 1)}"
            idle = (
                f"after {self.idle_timeout_s / 60:g} min without a job"
                if self.idle_timeout_s > 0
                else "never when idle"
            )
            self.log(
                f"serving {self.models} ({self.kind}, {threads}) on {self.socket}: "
                f"`performer render --models {self.models}` renders here; stops {idle} or on Ctrl-C"
            )
            self.serve()
        return self.jobs

    def stop(self) -> None:
        """Stop after the job in hand (within POLL_S when there is none); callable from another thread."""
        self._stopping = True

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        stamp = _file_stamp(self.socket)
        if stamp is not None and stamp[0] == self._socket_inode:  # ours, not a newer server's
            self.socket.unlink(missing_ok=True)
        self._socket_inode = None

    def __enter__(self) -> RenderServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _refuse_a_running_server(self) -> None:
        try:
            mode = os.lstat(self.socket).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise PipelineError("is in the place of the render socket and not a socket: remove it", self.socket)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(REQUEST_TIMEOUT_S)
        try:
            probe.connect(str(self.socket))
        except (ConnectionRefusedError, FileNotFoundError):
            self.socket.unlink(missing_ok=True)  # left by a server that was killed
            return
        finally:
            probe.close()
        raise PipelineError(
            f"a render server for {self.models} with {self.params} is already running on this socket", self.socket
        )

    def _bind(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        umask = os.umask(0o177)  # the socket is born 0600: no moment when others could connect
        try:
            listener.bind(str(self.socket))
        except OSError as err:
            listener.close()
            raise PipelineError(f"cannot listen here: {err.strerror}", self.socket) from None
        finally:
            os.umask(umask)
        listener.listen(16)
        self._listener = listener
        self._socket_inode = os.stat(self.socket).st_ino

    # -- the models

    def _models_stamp(self) -> tuple[Any, ...]:
        """What the loaded models were made from: each ``model.pt``, each file of the export, the parameters."""
        from pipeline.inference.onnx_models import MODEL_NAMES

        files: list[Path] = [self.models / name / "model.pt" for name in MODEL_NAMES]
        export = self.models / "onnx"
        if export.is_dir():
            files += sorted(export.iterdir())
        return tuple((str(path), _file_stamp(path)) for path in [*files, self.params])

    def _load(self) -> None:
        self._bundle = None  # a failed load leaves no models: the next job tries again
        self._load_notes = []
        notes: list[str] = []
        stamp = self._models_stamp()  # before loading: a change while it loads is seen at the next job
        onnx_folder = choose_backend(self.backend, str(self.models), self.device, self.params, say=notes.append)
        self._load_notes = notes  # said before a failed load too, as the command says it
        self._bundle = load_bundle(str(self.models), self.device, self.params, self.threads, onnx_folder)
        self._loaded_stamp = stamp
        self.kind = "onnx" if onnx_folder is not None else "torch"

    def _warm_up(self) -> None:
        import numpy as np

        from pipeline.inference.render import render_score
        from pipeline.scores import NoteTable

        assert self._bundle is not None
        n = np.arange(WARM_UP_NOTES)
        notes = NoteTable(n * 480, n * 0 + 480, 60 + n, n * 0 + 80, n * 0, tempo_qpm=120.0)
        performer = self._bundle.performers[0] if self._bundle.performers else "0"
        render_score(self._bundle, notes, performer)

    def _current_models(self) -> ModelBundle:
        if self._bundle is None or self._models_stamp() != self._loaded_stamp:
            if self._bundle is not None:
                self.log(f"{self.models} or {self.params} changed: loading the models again")
            self._load()
        assert self._bundle is not None
        return self._bundle

    # -- one job

    def _handle(self, conn: socket.socket) -> None:
        started = time.perf_counter()
        uid = _peer_uid(conn)
        if uid is not None and uid != os.getuid():
            self.log(f"refused a connection from uid {uid}")
            return
        conn.settimeout(REQUEST_TIMEOUT_S)
        try:
            message = read_line(conn)
        except (PipelineError, OSError) as err:
            self.log(f"dropped a connection: {describe(err)}")
            return
        if message is None:
            return
        conn.settimeout(None)
        try:
            answer = self._answer(message, conn)
        except ClientGone:
            self.log("the command stopped waiting: its files were not written")
            return
        took = time.perf_counter() - started
        if "done" in answer:  # logged before the answer: once the command has its answer, the log has the job
            self.jobs += 1
            done, request = answer["done"], message["request"]
            self.log(
                f"{request['score']} -> {request['output']}: {done['notes']} notes, "
                f"{done['seconds']:.1f} s of audio in {took:.2f} s"
            )
        else:
            kind = "error" if "error" in answer else "declined"
            self.log(f"{kind}: {answer[kind]}")
        try:
            send_line(conn, answer)
        except OSError:
            self.log("the command stopped waiting before the answer (its files are written)")

    def _mismatch(self, options: Any) -> str | None:
        if not isinstance(options, dict):
            return "the command sent no options"
        for name in ("backend", "device"):
            if options.get(name) != getattr(self, name):
                return f"this server renders with --{name} {getattr(self, name)}, the command asked for {options.get(name)}"
        threads = options.get("threads")
        if threads is not None and threads != self.threads:
            return f"this server renders with --threads {self.threads}, the command asked for {threads}"
        return None

    def _answer(self, message: dict[str, Any], conn: socket.socket) -> dict[str, Any]:
        if message.get("protocol") != PROTOCOL:
            return {"declined": f"the command speaks protocol {message.get('protocol')}, this server {PROTOCOL}"}
        changed = changed_source(self._sources)
        if changed is not None:
            self.stop()
            return {"declined": f"{changed} changed since this server started, so it stops (start it again)"}
        try:
            request = RenderRequest.from_json(message.get("request"))
        except PipelineError as err:
            return {"declined": str(err)}
        why = self._mismatch(message.get("options"))
        if why is not None:
            return {"declined": why}
        with warnings.catch_warnings(record=True) as caught:
            # as in a fresh process: each warning of the job is reported (and not just the first time)
            warnings.simplefilter("default", UserWarning)
            try:
                check_loudness(request.loudness)
                notes = read_request_score(request)
                models = self._current_models()
                done = render_files(models, request, notes, before_writing=lambda: _check_client(conn))
                answer: dict[str, Any] = {"done": asdict(done)}
            except ClientGone:
                raise
            except (PipelineError, OSError) as err:
                answer = {"error": describe(err)}
            except Exception as err:  # noqa: BLE001  (a bug: reported like the command's, and the server goes on)
                self.log("".join(traceback.format_exception(err)).rstrip())
                answer = {"error": describe(err)}
        answer["warnings"] = [str(w.message) for w in caught]
        answer["notes"] = self._load_notes
        self._sources = pipeline_sources(self._sources)  # modules the job imported first (plots, torch's path)
        return answer
