"""A tiny HTTP file server on 127.0.0.1 for download tests (Range requests, deliberate faults).

    with FileServer(folder) as server:
        server.cut_once.add("/big.zip")   # first GET of that path is cut off halfway
        url = server.url("big.zip")

``server.log`` records ``(path, range header or None, status)`` for every GET.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FileServer:
    def __init__(self, root: Path, honour_range: bool = True) -> None:
        self.root = Path(root)
        self.honour_range = honour_range
        self.cut_once: set[str] = set()
        self._already_cut: set[str] = set()
        self.log: list[tuple[str, str | None, int]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, name: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def gets(self, path: str) -> list[tuple[str, str | None, int]]:
        return [entry for entry in self.log if entry[0] == path]

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _record(self, status: int) -> None:
                with server._lock:
                    server.log.append((self.path, self.headers.get("Range"), status))

            def do_GET(self) -> None:
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self._record(404)
                    self.send_error(404)
                    return
                data = path.read_bytes()
                size = len(data)
                start, end = 0, size - 1
                status = 200
                header = self.headers.get("Range")
                if header and server.honour_range:
                    match = re.fullmatch(r"bytes=(\d+)-(\d*)", header.strip())
                    if match:
                        start = int(match.group(1))
                        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                        if start >= size:
                            self._record(416)
                            self.send_response(416)
                            self.send_header("Content-Range", f"bytes */{size}")
                            self.send_header("Content-Length", "0")
                            self.end_headers()
                            return
                        status = 206
                body = data[start : end + 1]
                self._record(status)
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes" if server.honour_range else "none")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                with server._lock:
                    cut = self.path in server.cut_once and self.path not in server._already_cut
                    if cut:
                        server._already_cut.add(self.path)
                if cut:  # announce everything, send half, hang up
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        return Handler
