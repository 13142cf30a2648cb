"""Hostile input over every command and stage: one line `error: <file or key>: <fault>`, a non-zero exit
status, no traceback, and nothing written (no output, no temporary, no stray MLflow store).

Each case runs the real entry point (`python -m pipeline ...` or `python -m stages.NAME ...`) in a fresh
folder holding the inputs below, and writes (or would write) under `out/`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
import yaml

pytestmark = pytest.mark.slow  # ~60 fresh interpreters

REPO = Path(__file__).resolve().parents[1]
LONG_NAME = "a" * 240


def _midi(path: Path, pitches, qpm=120.0) -> None:
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm), time=0)])
    for pitch in pitches:
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=480))
    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """in/: good and broken scores, recordings and parameter files."""
    root = tmp_path_factory.mktemp("inputs")
    _midi(root / "tune.mid", [60, 62, 64, 65, 67, 69, 71, 72])
    _midi(root / "long.mid", [60, 62] * 1800)  # 30 minutes at 120 qpm
    _midi(root / "empty.mid", [])
    (root / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (root / "broken.xml").write_text("<score-partwise><part>")
    rate = 16000
    t = np.arange(rate * 4) / rate
    sf.write(root / "tone.wav", (0.3 * np.sin(2 * np.pi * 261.6 * t)).astype(np.float32), rate)
    sf.write(root / "silent.wav", np.zeros(rate * 4, np.float32), rate)
    sf.write(root / "one.wav", np.array([0.5], np.float32), rate, subtype="FLOAT")
    nan = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    nan[1000:1010] = np.nan
    sf.write(root / "nan.wav", nan, rate, subtype="FLOAT")
    (root / "garbage.wav").write_bytes(b"RIFF0000WAVEjunk" * 10)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def variant(name: str, group: str, key: str, value) -> None:
        changed = yaml.safe_load((REPO / "params.yaml").read_text())
        block = changed
        for part in group.split("."):
            block = block[part]
        block[key] = value
        (root / name).write_text(yaml.safe_dump(changed, sort_keys=False))

    variant("zero-rate.yaml", "resample", "sample_rate", 0)
    variant("nan-band.yaml", "align", "band_seconds", float("nan"))
    variant("negative-mels.yaml", "mel", "n_mels", -80)
    variant("negative-steps.yaml", "train_alignment.train", "max_steps", -1)
    variant("zero-batch.yaml", "train_synthesis.train", "batch_size", 0)
    variant("no-pieces.yaml", "data.builtin", "violin_pieces", 0)
    no_corpus = yaml.safe_load((root / "no-pieces.yaml").read_text())
    no_corpus["data"]["builtin"]["chorale_pieces"] = 0
    (root / "no-pieces.yaml").write_text(yaml.safe_dump(no_corpus, sort_keys=False))
    variant("typo-model.yaml", "train_alignment", "model", {"d_modle": 64})
    (root / "not-yaml.yaml").write_text("mel: [unclosed\n")
    return root


@pytest.fixture
def workdir(tmp_path, inputs) -> Path:
    (tmp_path / "in").symlink_to(inputs)
    (tmp_path / "out").mkdir()
    (tmp_path / "params.yaml").write_bytes((inputs / "params.yaml").read_bytes())  # what commands read by default
    return tmp_path


def _run(workdir: Path, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PERFORMER_DEBUG")}
    env.update(
        PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    )
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=workdir, capture_output=True, text=True, env=env, timeout=timeout
    )


def _left_behind(workdir: Path) -> list[str]:
    """Every file written outside in/ and the default params.yaml (outputs, temporaries, an MLflow store)."""
    return sorted(
        str(p.relative_to(workdir))
        for p in workdir.rglob("*")
        if p.is_file() and not str(p.relative_to(workdir)).startswith("in") and p.name != "params.yaml"
    )


def _assert_one_line(result: subprocess.CompletedProcess, message: str, status: int = 1) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    error_lines = [line for line in lines if line.startswith("error: ")]
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(error_lines) == 1, result.stderr
    assert message in error_lines[0], error_lines[0]


GOOD_SCORE, GOOD_AUDIO = "in/tune.mid", "in/tone.wav"


def _training(stage: str, params: str, features: str = "in/f") -> list[str]:
    """A training stage's command (its paths as dvc.yaml passes them) with ``params``."""
    outputs = ["--out", "out/m", "--metrics", "out/m.json", "--loss-csv", "out/l.csv", "--loss-png", "out/l.png"]
    return [f"stages.{stage}", "--features", features, "--performers", "in/p.json", *outputs, "--params", params]


CASES = [
    # --------------------------------------------------------------------------- performer perform
    (["pipeline", "perform", "in/missing.mid", "-o", "out/a.wav"], "in/missing.mid: score file not found"),
    (["pipeline", "perform", "in/broken.mid", "-o", "out/a.wav"], "in/broken.mid: not a readable MIDI"),
    (["pipeline", "perform", "in/broken.xml", "-o", "out/a.wav"], "in/broken.xml: not a readable MusicXML"),
    (["pipeline", "perform", "in/empty.mid", "-o", "out/a.wav"], "in/empty.mid: score holds no notes"),
    (["pipeline", "perform", GOOD_SCORE, "-o", "out/a.mp4"], "out/a.mp4: output has suffix '.mp4'"),
    (["pipeline", "perform", GOOD_SCORE, "-o", "out/take"], "out/take: output has no suffix"),
    (["pipeline", "perform", GOOD_SCORE, "-o", "out"], "out: output has no suffix"),
    (["pipeline", "perform", GOOD_SCORE, "-o", "out/d.wav"], "out/d.wav: output is a folder"),
    (["pipeline", "perform", GOOD_SCORE, "-o", "/proc/a.wav"], "/proc/a.wav: output's folder /proc is not writable"),
    (["pipeline", "perform", GOOD_SCORE, "-o", f"out/{LONG_NAME}.wav"], "with the temporary suffix"),
    (["pipeline", "perform", GOOD_SCORE, "-o", "out/a.wav", "--truth", "out/t.txt"], "--truth has suffix '.txt'"),
    (["pipeline", "perform", GOOD_SCORE, "-o", "out/a.wav", "--truth", "/proc/t.csv"], "--truth's folder /proc"),
    (["pipeline", "perform", GOOD_SCORE, "-o", "out/a.wav", "--performer", "zed"], "unknown performer 'zed'"),
    (["pipeline", "perform", GOOD_SCORE, "-o", "out/a.wav", "--sample-rate", "0"], "--sample-rate must be > 0"),
    (["pipeline", "perform", GOOD_SCORE, "-o", "out/a.wav", "--params", "in/zero-rate.yaml"], "resample.sample_rate"),
    (["pipeline", "perform", GOOD_SCORE, "-o", "out/a.wav", "--params", "in/none.yaml"], "parameter file not found"),
    (["pipeline", "perform", GOOD_SCORE, "-o", "out/a.wav", "--params", "in/not-yaml.yaml"], "not valid YAML"),
    # --------------------------------------------------------------------------- performer mel
    (["pipeline", "mel", "in/missing.wav", "-o", "out/m.npy"], "in/missing.wav: audio file not found"),
    (["pipeline", "mel", "in/garbage.wav", "-o", "out/m.npy"], "in/garbage.wav: not a readable audio file"),
    (["pipeline", "mel", "in/one.wav", "-o", "out/m.npy"], "in/one.wav: too short for one mel frame"),
    (["pipeline", "mel", "in/nan.wav", "-o", "out/m.npy"], "in/nan.wav: holds 10 non-finite"),
    (["pipeline", "mel", "in/silent.wav", "-o", "out/m.npy"], "in/silent.wav: silent"),
    (["pipeline", "mel", GOOD_AUDIO, "-o", "out/m.txt"], "out/m.txt: output has suffix '.txt' (expected .npy)"),
    (["pipeline", "mel", GOOD_AUDIO, "-o", "out/m.npy", "--plot", "out/p.jpg"], "--plot has suffix '.jpg'"),
    (["pipeline", "mel", GOOD_AUDIO, "-o", "out/m.npy", "--params", "in/negative-mels.yaml"], "mel.n_mels must be"),
    # --------------------------------------------------------------------------- performer align
    (["pipeline", "align", GOOD_SCORE, "in/silent.wav", "-o", "out/a.csv"], "in/silent.wav: silent"),
    (["pipeline", "align", GOOD_SCORE, "in/nan.wav", "-o", "out/a.csv"], "non-finite"),
    (["pipeline", "align", "in/long.mid", GOOD_AUDIO, "-o", "out/a.csv"], "in/tone.wav: the recording lasts 4.0 s"),
    (["pipeline", "align", GOOD_SCORE, GOOD_AUDIO, "-o", "out/a.wav"], "out/a.wav: output has suffix '.wav'"),
    (["pipeline", "align", GOOD_SCORE, GOOD_AUDIO, "-o", "out/a.csv", "--params", "in/none.yaml"], "not found"),
    (["pipeline", "align", GOOD_SCORE, GOOD_AUDIO, "-o", "out/a.csv", "--params", "in/nan-band.yaml"], "finite"),
    # --------------------------------------------------------------------------- performer render
    (["pipeline", "render", GOOD_SCORE, "-o", "out/r.ogg"], "out/r.ogg: output has suffix '.ogg'"),
    (["pipeline", "render", GOOD_SCORE, "-o", "out/d.wav"], "out/d.wav: output is a folder"),
    (["pipeline", "render", GOOD_SCORE, "-o", "out/r.wav", "--mel-plot", "out/m.svg"], "--mel-plot has suffix"),
    (["pipeline", "render", GOOD_SCORE, "-o", "out/r.wav", "--timing", "out/d.wav"], "--timing has suffix"),
    (["pipeline", "render", GOOD_SCORE, "-o", "out/r.wav", "--models", "in/no-models"], "in/no-models"),
    (["pipeline", "render", GOOD_SCORE, "-o", "out/r.wav", "--device", "bogus"], "device 'bogus' is not auto"),
    (["pipeline", "render", "in/empty.mid", "-o", "out/r.wav"], "in/empty.mid: score holds no notes"),
    # outputs are checked before anything is read: a long score with a bad output fails at once
    (["pipeline", "render", "in/missing.mid", "-o", "/proc/r.wav"], "/proc/r.wav: output's folder /proc"),
    (["pipeline", "perform", "in/missing.mid", "-o", "/proc/r.wav"], "/proc/r.wav: output's folder /proc"),
    (["pipeline", "render", "in/long.mid", "-o", "out/d.wav"], "out/d.wav: output is a folder"),
    # --------------------------------------------------------------------------- performer stage / models
    (["pipeline", "stage", "bogus"], "not a DVC project"),
    # --------------------------------------------------------------------------- the stage scripts
    (["stages.prepare", "--out", "out/raw", "--params", "in/no-pieces.yaml"], "data.source 'builtin' gives no"),
    (["stages.prepare", "--out", "out/raw", "--params", "in/zero-rate.yaml"], "params.resample.sample_rate must"),
    (["stages.prepare", "--out", "out/raw", "--params", "in/none.yaml"], "in/none.yaml: parameter file not found"),
    (["stages.resample", "--raw", "in/nowhere", "--out", "out/a16", "--params", "in/params.yaml"], "manifest not"),
    (
        ["stages.align", "--raw", "in/x", "--audio", "in/y", "--out", "out/al", "--metrics", "out/m.json"]
        + ["--plot", "out/p.csv", "--params", "in/nan-band.yaml"],
        "params.align.band_seconds must be a finite number, not nan",
    ),
    (
        _training("train_alignment", "in/typo-model.yaml"),
        "train_alignment.model.d_modle: not a setting of AlignmentModel",
    ),
    (
        _training("train_alignment", "in/negative-steps.yaml"),
        "params.train_alignment.train.max_steps must be >= 1, not -1",
    ),
    (_training("train_synthesis", "in/zero-batch.yaml"), "params.train_synthesis.train.batch_size must be >= 1, not 0"),
    (_training("train_synthesis", "in/params.yaml", features="in/nowhere"), "in/nowhere"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a)[:80] for a, _ in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(workdir, args, message):
    (workdir / "out" / "d.wav").mkdir()  # an output path that is a folder
    result = _run(workdir, args)
    _assert_one_line(result, message)
    (workdir / "out" / "d.wav").rmdir()
    assert _left_behind(workdir) == []


def test_the_suite_covers_enough_cases():
    assert len(CASES) >= 40
    commands = {args[1] if args[0] == "pipeline" else args[0] for args, _ in CASES}
    assert {"perform", "mel", "align", "render", "stage", "stages.prepare", "stages.resample"} <= commands


def test_a_usage_error_is_clicks_message_and_status_2(workdir):
    result = _run(workdir, ["pipeline", "render"])
    assert result.returncode == 2 and "Missing argument" in result.stderr and "Traceback" not in result.stderr


def test_debug_shows_the_traceback(workdir):
    result = _run(workdir, ["pipeline", "--debug", "perform", "in/missing.mid", "-o", "out/a.wav"])
    assert result.returncode == 1 and "Traceback" in result.stderr and "error: in/missing.mid" in result.stderr


def test_a_failure_after_the_first_output_takes_every_output_back(workdir):
    """perform writes the audio, then --truth fails (a folder stands where the file goes): the command's
    outputs are one unit, so the audio is taken back too."""
    (workdir / "out" / "t.csv").mkdir()
    result = _run(workdir, ["pipeline", "perform", GOOD_SCORE, "-o", "out/a.wav", "--truth", "out/t.csv"])
    _assert_one_line(result, "--truth is a folder")
    (workdir / "out" / "t.csv").rmdir()
    assert _left_behind(workdir) == []


def test_an_earlier_output_survives_a_failed_rewrite(workdir):
    first = _run(workdir, ["pipeline", "perform", GOOD_SCORE, "-o", "out/a.wav"])
    assert first.returncode == 0, first.stderr
    before = (workdir / "out" / "a.wav").read_bytes()
    result = _run(workdir, ["pipeline", "perform", "in/broken.mid", "-o", "out/a.wav"])
    assert result.returncode == 1
    assert (workdir / "out" / "a.wav").read_bytes() == before
    assert _left_behind(workdir) == ["out/a.wav"]


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_cleans_up_and_exits_with_its_status(workdir, sig, status):
    """SIGTERM (timeout, docker stop, Prefect cancel) and Ctrl-C during a long perform: the exit status of
    the signal, one line, no temporary file left."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "perform", "in/long.mid", "-o", "out/long.wav"],
        cwd=workdir,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        # a test run started in the background inherits an ignored SIGINT, which Python then keeps ignoring
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(6)  # imports done, the 30-minute score being rendered
    assert proc.poll() is None, "perform ended before the signal"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("error: ")
    assert _left_behind(workdir) == []


def test_notes_outside_the_instrument_are_one_warning_line(workdir, inputs):
    _midi(workdir / "out" / "low.mid", [30, 31, 60, 62])  # two notes below the violin's G3
    result = _run(workdir, ["pipeline", "perform", "out/low.mid", "-o", "out/a.wav"])
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "2 of 4 notes lie outside aurora's instrument's range (MIDI 55-103" in warnings[0]
    assert "RangeWarning" not in result.stderr


def test_render_checks_its_outputs_before_importing_torch(workdir):
    """A long render with an unwritable output fails before any work: not even torch is imported."""
    probe = (
        "import sys; from pipeline.cli import main; sys.argv = ['performer', 'render', 'in/long.mid', '-o', "
        "'/proc/r.wav']\ntry:\n    main()\nexcept SystemExit as e:\n    print('torch' in sys.modules, e.code)"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True, env=env)
    assert result.stdout.split() == ["False", "1"], result.stdout + result.stderr
