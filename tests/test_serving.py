"""The render server (`performer serve`, pipeline/serving): found by its models and parameters, private
to its user, the same bytes as the command alone, never stale, and no files for a command that left."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.models.persistence import save_model
from pipeline.serving import client
from pipeline.serving.client import ask_server, check_private_dir, send_line, socket_path
from pipeline.serving.job import RenderRequest, choose_backend, load_bundle, read_request_score, render_files
from pipeline.serving.server import RenderServer, changed_source, pipeline_sources
from tests.test_cli import assert_one_line_error
from tests.test_inference import performer_cli
from tests.test_onnx_render import make_models, write_and_export
from tests.test_scores import write_midi

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
OPTIONS = {"backend": "auto", "device": "auto", "threads": None}  # what `performer render` sends by default
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def runtime(monkeypatch):
    """A short private runtime folder (a Unix socket's path is at most ~100 bytes: pytest's are long)."""
    folder = Path(tempfile.mkdtemp(prefix="dp-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def workdir(tmp_path, runtime):
    """A models folder with a current ONNX export and a score, in a folder of their own."""
    write_and_export(tmp_path / "models", make_models())
    write_midi(tmp_path / "tune.mid", [(i * 0.5, 0.5, 60 + (i % 7), 80) for i in range(24)], tempo_bpm=100)
    return tmp_path


class Running:
    """A RenderServer answering in a thread, with its log lines."""

    def __init__(self, models: Path, **options) -> None:
        self.lines: list[str] = []
        self.server = RenderServer(models, PARAMS, log=self.lines.append, **options)
        self.server.start()
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.stop()
        self.thread.join(timeout=10)
        self.server.close()


@pytest.fixture
def running(workdir):
    server = Running(workdir / "models")
    yield server
    server.close()


def alone(models: Path, request: RenderRequest, backend: str = "auto") -> bytes:
    """What `performer render --server off` writes for ``request``."""
    folder = choose_backend(backend, str(models), "auto", PARAMS, say=lambda line: None)
    render_files(load_bundle(str(models), "cpu", PARAMS, 1, folder), request, read_request_score(request))
    return Path(request.output).read_bytes()


def test_the_socket_is_named_by_models_and_params(runtime, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = socket_path(Path("models"), Path("params.yaml"))
    assert path.parent == runtime / "deep-performer" and path.name.startswith("render-") and path.suffix == ".sock"
    assert path == socket_path(tmp_path / "models", tmp_path / "params.yaml")  # the same folder, spelt absolutely
    assert path != socket_path(Path("models2"), Path("params.yaml"))
    assert path != socket_path(Path("models"), Path("other.yaml"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/tmp/" + "x" * 80)
    with pytest.raises(PipelineError, match="over the 100 a Unix socket allows"):
        socket_path(Path("models"), Path("params.yaml"))
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert client.runtime_dir() == Path(tempfile.gettempdir()) / f"deep-performer-{os.getuid()}"


def test_the_socket_folder_is_private(runtime):
    folder = runtime / "deep-performer"
    assert check_private_dir(folder) is False and not folder.exists()
    assert check_private_dir(folder, create=True) is True
    assert folder.stat().st_mode & 0o777 == 0o700
    folder.chmod(0o755)  # anyone could read it; and a folder others can write could hold their socket
    with pytest.raises(PipelineError, match="mode 755, not to this user"):
        check_private_dir(folder)
    folder.rmdir()
    folder.write_text("")
    with pytest.raises(PipelineError, match="not a folder"):
        check_private_dir(folder, create=True)


def test_requests_travel_as_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    request = RenderRequest("a.mid", "out/a.wav", "ana:0.5,bo:0.5", 90.0, "model", None, "t.csv")
    assert RenderRequest.from_json(asdict(request)) == request
    absolute = request.absolute()
    assert absolute.score == str(tmp_path / "a.mid") and absolute.output == str(tmp_path / "out" / "a.wav")
    assert absolute.mel_plot is None and absolute.timing == str(tmp_path / "t.csv") and absolute.tempo == 90.0
    for bad in [{**asdict(request), "tempo": "fast"}, {**asdict(request), "tempo": True}, {"score": "a.mid"}, []]:
        with pytest.raises(PipelineError, match="render request"):
            RenderRequest.from_json(bad)


def test_a_changed_source_file_is_seen(tmp_path):
    stamps = pipeline_sources()
    assert any(file.endswith(os.path.join("serving", "server.py")) for file in stamps)
    assert changed_source(stamps) is None
    source = tmp_path / "module.py"
    source.write_text("x = 1\n")
    mine = {str(source): source.stat().st_mtime_ns}
    assert changed_source(mine) is None
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 1_000_000))
    assert changed_source(mine) == str(source)
    source.unlink()
    assert changed_source(mine) == str(source)


def test_a_served_render_is_the_same_file(workdir, running):
    socket_file = running.server.socket
    assert socket_file.stat().st_mode & 0o777 == 0o600
    assert socket_file.parent.stat().st_mode & 0o777 == 0o700
    assert running.server.kind == "onnx"
    models = workdir / "models"
    served = RenderRequest(
        str(workdir / "tune.mid"), str(workdir / "served.wav"), "ben", None, "calibrated", None, None
    )
    done = ask_server(models, PARAMS, served, OPTIONS)
    assert done is not None and done.notes == 24 and done.performer == "ben" and done.seconds > 5
    assert any("tune.mid" in line and "24 notes" in line for line in running.lines)
    request = RenderRequest(str(workdir / "tune.mid"), str(workdir / "alone.wav"), "ben")
    assert (workdir / "served.wav").read_bytes() == alone(models, request)
    # a module a job imports first is watched from then on (as if none had been imported at the start)
    running.server._sources = {}
    assert ask_server(models, PARAMS, served, OPTIONS) is not None
    assert str(Path(sys.modules["pipeline.serving.server"].__file__)) in running.server._sources
    # the same options given explicitly (the server's own) are served too; other ones are not
    assert ask_server(models, PARAMS, served, {**OPTIONS, "threads": 1}) is not None
    said: list[str] = []
    for options in ({**OPTIONS, "threads": 2}, {**OPTIONS, "backend": "torch"}, {**OPTIONS, "device": "cpu"}):
        assert ask_server(models, PARAMS, served, options, say=said.append) is None
    assert len(said) == 3 and all(line.startswith("rendering here, not on the render server: ") for line in said)
    assert "--threads 1, the command asked for 2" in said[0]
    # no server for other models or parameters
    assert ask_server(workdir, PARAMS, served, OPTIONS) is None
    # nor in a folder others can enter: whoever listens there is not asked
    socket_file.parent.chmod(0o755)
    said.clear()
    assert ask_server(models, PARAMS, served, OPTIONS, say=said.append) is None
    assert len(said) == 1 and said[0].startswith("warning: rendering here, not on a render server: ")
    assert "mode 755" in said[0]
    socket_file.parent.chmod(0o700)


def test_a_fault_is_the_commands_own_line(workdir, running, monkeypatch):
    monkeypatch.chdir(workdir)
    models = Path("models")
    missing = RenderRequest("missing.mid", "out.wav")
    with pytest.raises(PipelineError) as caught:
        ask_server(models, PARAMS, missing, OPTIONS)
    assert str(caught.value) == "missing.mid: score file not found"  # the user's path, not the absolute one
    with pytest.raises(PipelineError, match="--loudness must be one of"):
        ask_server(models, PARAMS, RenderRequest("tune.mid", "out.wav", loudness="loud"), OPTIONS)
    with pytest.raises(PipelineError, match="unknown performer 'zed'"):
        ask_server(models, PARAMS, RenderRequest("tune.mid", "out.wav", performer="zed"), OPTIONS)
    assert not (workdir / "out.wav").exists()
    assert ask_server(models, PARAMS, RenderRequest("tune.mid", "out.wav"), OPTIONS) is not None  # still serving


def test_changed_models_are_loaded_again(workdir, running):
    models = workdir / "models"
    retrained = make_models(seed=3)
    save_model(models / "synthesis" / "model.pt", retrained.synthesis)
    said: list[str] = []
    request = RenderRequest(str(workdir / "tune.mid"), str(workdir / "served.wav"))
    assert ask_server(models, PARAMS, request, OPTIONS, say=said.append) is not None
    assert running.server.kind == "torch"  # the export is stale now: as the command alone, torch renders
    stale = f"{models / 'synthesis' / 'model.pt'} changed since it was exported (run `dvc repro export_onnx`)"
    assert said == [f"rendering with torch: {stale}"]
    assert any("loading the models again" in line for line in running.lines)
    alone_request = RenderRequest(str(workdir / "tune.mid"), str(workdir / "alone.wav"))
    assert (workdir / "served.wav").read_bytes() == alone(models, alone_request)


def test_models_that_went_missing_are_a_fault_until_they_are_back(workdir, running):
    vocoder = workdir / "models" / "hifigan" / "model.pt"
    weights = vocoder.read_bytes()
    vocoder.unlink()
    request = RenderRequest(str(workdir / "tune.mid"), str(workdir / "out.wav"))
    said: list[str] = []
    with pytest.raises(PipelineError, match="no trained hifigan model"):
        ask_server(workdir / "models", PARAMS, request, OPTIONS, say=said.append)
    assert said == [f"rendering with torch: {vocoder}: missing"]  # what the command alone says first
    vocoder.write_bytes(weights)
    assert ask_server(workdir / "models", PARAMS, request, OPTIONS) is not None
    assert running.server.kind == "onnx" and (workdir / "out.wav").exists()


def test_a_command_that_left_gets_no_files(workdir, running):
    request = RenderRequest(str(workdir / "tune.mid"), str(workdir / "left.wav"))
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(running.server.socket))
    send_line(conn, {"protocol": client.PROTOCOL, "request": asdict(request), "options": OPTIONS})
    conn.close()  # Ctrl-C while the server renders
    deadline = time.monotonic() + 20
    while not any("stopped waiting" in line for line in running.lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any("its files were not written" in line for line in running.lines), running.lines
    assert not (workdir / "left.wav").exists()


def test_a_server_whose_code_changed_stops(workdir, running, tmp_path):
    source = tmp_path / "stand_in.py"
    source.write_text("")
    running.server._sources = {str(source): source.stat().st_mtime_ns - 1}  # as if edited since it started
    said: list[str] = []
    request = RenderRequest(str(workdir / "tune.mid"), str(workdir / "out.wav"))
    assert ask_server(workdir / "models", PARAMS, request, OPTIONS, say=said.append) is None
    assert said == [
        f"rendering here, not on the render server: {source} changed since this server started, so it stops (start it again)"
    ]
    running.thread.join(timeout=5)
    assert not running.thread.is_alive()


def test_one_server_per_models_and_a_dead_ones_socket_is_replaced(workdir, running):
    with pytest.raises(PipelineError, match="already running"):
        RenderServer(workdir / "models", PARAMS).start()
    running.close()
    assert not running.server.socket.exists()  # removed on the way out
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # what a killed server leaves: a socket file
    dead.bind(str(running.server.socket))
    dead.close()
    request = RenderRequest(str(workdir / "tune.mid"), str(workdir / "out.wav"))
    assert ask_server(workdir / "models", PARAMS, request, OPTIONS) is None  # nobody answers: render here
    again = Running(workdir / "models")
    try:
        assert ask_server(workdir / "models", PARAMS, request, OPTIONS) is not None
    finally:
        again.close()


def test_an_idle_server_stops(workdir):
    lines: list[str] = []
    with RenderServer(workdir / "models", PARAMS, idle_timeout_s=0.2, log=lines.append) as server:
        server.start()
        started = time.monotonic()
        server.serve()
        assert time.monotonic() - started < 5
    assert not server.socket.exists() and lines == ["no job for 0 min: stopping"]


def test_only_a_models_folder_is_served(workdir):
    with pytest.raises(PipelineError, match="not a models folder"):
        RenderServer(Path("models:/deep-performer@champion"), PARAMS)
    with pytest.raises(PipelineError, match="--backend must be one of"):
        RenderServer(workdir / "models", PARAMS, backend="fast")
    (workdir / "models" / "hifigan" / "model.pt").unlink()
    with pytest.raises(PipelineError, match="no trained hifigan model"):
        RenderServer(workdir / "models", PARAMS).start()


@pytest.mark.slow
def test_serve_and_render_commands(workdir, runtime):
    """The commands themselves: `performer render` finds `performer serve` by its models and parameters,
    writes the bytes it writes alone, and renders alone again once the server is stopped (SIGTERM)."""
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime))
    served = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--models", "models", "--params", str(PARAMS)],
        cwd=workdir,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = served.stderr.readline()
        assert "serving models (onnx, 1 thread) on " in first, first
        args = ("render", "tune.mid", "--models", "models", "--params", PARAMS)
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", *map(str, args), "-o", "served.wav"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0 and result.stdout.startswith("wrote served.wav (24 notes"), result.stderr
        assert "tune.mid -> " in served.stderr.readline()  # the server did the job
        alone_run = performer_cli(*args, "-o", "alone.wav", "--server", "off", cwd=workdir)
        assert alone_run.returncode == 0, alone_run.stderr
        assert (workdir / "served.wav").read_bytes() == (workdir / "alone.wav").read_bytes()
        assert_one_line_error(
            performer_cli(*args, "-o", "x.wav", "--server", "always", cwd=workdir), "--server must be"
        )
        socket_file = socket_path(workdir / "models", PARAMS)
        assert socket_file.exists()
    finally:
        served.send_signal(signal.SIGTERM)
        served.wait(timeout=20)
    assert served.returncode == 143 and not socket_file.exists()
    assert_one_line_error(performer_cli("serve", "--models", "nowhere", cwd=workdir), "nowhere: not a models folder")
