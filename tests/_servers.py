"""Helpers for tests that start real servers as subprocesses (prefect server, mlflow models serve):
a free port on 127.0.0.1, waiting until a URL answers, and stopping a server with its workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answers(url: str, proc: subprocess.Popen, seconds: float, log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early, with the end of ``log``, if ``proc`` exits first."""

    def tail() -> str:
        return log.read_text()[-3000:] if log is not None and log.exists() else ""

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{proc.args[:4]} exited with {proc.returncode}\n{tail()}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds} s\n{tail()}")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server started with ``start_new_session=True`` together with its workers (its process group)."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:  # the whole group is gone
            break
        try:
            proc.wait(timeout=wait)
            os.killpg(proc.pid, 0)  # workers left behind?
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:  # not a group leader after all
        proc.kill()
        proc.wait(timeout=10)
