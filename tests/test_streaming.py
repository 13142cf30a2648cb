"""Long commands: streaming rendering (pipeline.rendering.render_blocks / render_to_file: the same samples and
file bytes as the whole-array path, memory that does not grow with the score), the chunked log-mel of
`performer mel`, and progress bars (pipeline.progress) in `perform`, `render` and `mel`."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.audio import write_audio
from pipeline.progress import progress_bar
from pipeline.rendering import (
    Instrument,
    Performance,
    _assign_channels,
    _events,
    _note_events,
    _StreamingEQ,
    apply_eq,
    render,
    render_blocks,
    render_to_file,
    rendered_frames,
)

REPO = Path(__file__).resolve().parents[1]
RATE = 16000


def played(n: int = 24, seed: int = 0) -> Performance:
    """Overlapping notes (up to 35 at once: channels shared) with vibrato and expression curves."""
    rng = np.random.default_rng(seed)
    onset = np.sort(rng.uniform(0.0, 2.0, n))
    offset = onset + rng.uniform(0.001, 1.0, n)
    offset[:3] = onset[:3] + 1e-5  # shorter than a sample
    steps = [int((b - a) * 200) + 2 for a, b in zip(onset, offset)]
    return Performance(
        onset,
        offset,
        rng.integers(40, 90, n),
        rng.integers(30, 127, n),
        bend_cents=[30 * np.sin(np.arange(k) / 7) for k in steps],
        expression=[np.linspace(60, 120, k) for k in steps],
    )


def dense_chord(n: int = 40) -> Performance:
    return Performance(np.zeros(n), np.full(n, 0.6), 30 + np.arange(n), np.full(n, 100))


EQ = Instrument("FluidR3_GM.sf2", program=40, reverb_send=40, low_shelf_db=2.0, high_shelf_db=-3.0)
LOUD = Instrument("FluidR3_GM.sf2", program=0, gain=3.0, reverb_send=0, low_shelf_db=6.0, high_shelf_db=6.0)


def test_events_come_in_the_order_of_sorting_them_all():
    perf, rate = played(60, seed=1), RATE
    channels = _assign_channels(perf)
    step = round(rate / perf.control_rate)
    every = []
    for i in range(len(perf)):
        start = int(round(perf.onset[i] * rate))
        stop = max(start + 1, int(round(perf.offset[i] * rate)))
        every += _note_events(perf, i, int(channels[i]), start, stop, step)
    assert list(_events(perf, rate)) == sorted(every)


@pytest.mark.parametrize("block_frames", [1000, 4096, 1 << 16])
def test_the_streaming_eq_is_apply_eq_bit_for_bit(block_frames):
    x = np.random.default_rng(2).normal(0, 0.3, (50_000, 2)).astype(np.float32)
    eq = _StreamingEQ(RATE, 3.0, -4.0)
    blocks = [eq(x[a : a + block_frames]) for a in range(0, len(x), block_frames)]
    assert np.array_equal(np.concatenate(blocks), apply_eq(x, RATE, 3.0, -4.0))


@pytest.mark.parametrize("block_frames", [777, 1 << 16])
def test_the_blocks_joined_are_render(block_frames):
    perf = played()
    whole = render(perf, EQ, RATE, tail=0.5)
    blocks = list(render_blocks(perf, EQ, RATE, tail=0.5, block_frames=block_frames))
    assert all(b.dtype == np.float32 and b.shape[1] == 2 for b in blocks)
    assert {len(b) for b in blocks[:-1]} <= {block_frames}
    assert whole.shape == (rendered_frames(perf, RATE, 0.5), 2)
    assert np.array_equal(np.concatenate(blocks), whole)


def test_rendering_is_deterministic():
    """render_to_file's second pass (a peak above 1) relies on it: the same performance, the same samples."""
    assert np.array_equal(render(played(), EQ, RATE), render(played(), EQ, RATE))


@pytest.mark.parametrize(
    ("perf", "instrument", "name", "subtype"),
    [
        (played(), EQ, "a.wav", None),  # PCM_16, as perform writes
        (played(), EQ, "a.flac", None),
        (played(), EQ, "a.wav", "FLOAT"),
        (dense_chord(), LOUD, "loud.wav", None),  # peak above 1: scaled by write_audio, so by the stream too
        (dense_chord(), LOUD, "loud.wav", "FLOAT"),
        (dense_chord(), LOUD, "loud.flac", None),
        (Performance(np.zeros(0), np.zeros(0), np.zeros(0, int), np.zeros(0, int)), EQ, "empty.wav", None),
    ],
)
def test_render_to_file_writes_the_bytes_write_audio_writes(tmp_path, perf, instrument, name, subtype):
    expected, streamed = tmp_path / "whole" / name, tmp_path / "stream" / name
    audio = render(perf, instrument, RATE, tail=0.3)
    write_audio(expected, audio, RATE, subtype=subtype)
    peak = render_to_file(perf, instrument, RATE, streamed, tail=0.3, subtype=subtype)
    assert peak == float(np.max(np.abs(audio)))
    assert (peak > 1.0) == (instrument is LOUD)
    assert streamed.read_bytes() == expected.read_bytes()
    assert sorted(p.name for p in streamed.parent.iterdir()) == [name]  # no temporary left
    if peak > 1.0:
        assert float(np.max(np.abs(sf.read(streamed)[0]))) <= 1.0


def test_an_interrupted_render_leaves_nothing(tmp_path, monkeypatch):
    import pipeline.rendering as rendering

    real = rendering.render_blocks

    def interrupted(*args, **kwargs):
        blocks = real(*args, **kwargs)
        yield next(blocks)
        blocks.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(rendering, "render_blocks", interrupted)
    (tmp_path / "a.wav").write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        render_to_file(played(), EQ, RATE, tmp_path / "a.wav", tail=5.0)
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]
    assert (tmp_path / "a.wav").read_bytes() == b"old"


# --------------------------------------------------------------------------------------- progress


def test_progress_in_a_log_is_a_few_plain_lines_with_an_eta():
    stream = io.StringIO()
    with progress_bar(1000, "render", "s of audio", stream=stream, log_interval=0.001) as bar:
        for _ in range(500):
            time.sleep(0.0001)
            bar.update(2)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert 2 <= len(lines) <= 11  # one per tenth at most
    assert lines[-1].startswith("render: 100% 1000/1000 s of audio") and "ETA" in lines[-1]


def test_short_work_prints_nothing_and_a_terminal_gets_a_bar():
    quiet = io.StringIO()
    with progress_bar(10, "render", stream=quiet) as bar:
        bar.update(10)
    assert quiet.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    with progress_bar(10, "render", "windows", stream=tty, tty_delay=0) as bar:
        bar.update(10)
    assert "\r" in tty.getvalue() and "10/10 windows" in tty.getvalue()


# --------------------------------------------------------------------------------------- perform


def _midi(path: Path, minutes: float) -> None:
    sys.path.insert(0, str(REPO))
    from benchmarks.perform_memory import write_midi

    write_midi(path, minutes)


def _peak_rss(argv: list[str], cwd: Path) -> int:
    """Peak RSS in bytes of a command run in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, err.decode()[-2000:]
    return usage.ru_maxrss * 1024


def test_perform_writes_what_render_and_write_audio_write(tmp_path):
    from pipeline.performers import get_performer
    from pipeline.scores import read_score

    _midi(tmp_path / "s.mid", 0.25)
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "perform", "s.mid", "-o", "a.flac", "--sample-rate", str(RATE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # short work: no progress lines
    player = get_performer("aurora")
    write_audio(
        tmp_path / "b.flac",
        render(player.perform(read_score(tmp_path / "s.mid"), seed=0), player.instrument, RATE),
        RATE,
    )
    assert (tmp_path / "a.flac").read_bytes() == (tmp_path / "b.flac").read_bytes()


@pytest.mark.slow
def test_perform_memory_does_not_grow_with_the_score(tmp_path):
    """The whole-array path held ~29 MB more per minute of score (docs/benchmarks.md, "perform memory"):
    ~400 MB more for 15 minutes than for one. Streamed, the difference is the performance's own arrays."""
    peaks = {}
    for minutes in (1, 15):
        _midi(tmp_path / f"{minutes}.mid", minutes)
        argv = [sys.executable, "-m", "pipeline", "perform", f"{minutes}.mid", "-o", f"{minutes}.wav"]
        argv += ["--sample-rate", str(RATE)]
        peaks[minutes] = _peak_rss(argv, tmp_path)
        assert sf.info(str(tmp_path / f"{minutes}.wav")).duration > minutes * 60 * 0.8
    assert peaks[15] - peaks[1] < 80 * 2**20, {k: v / 2**20 for k, v in peaks.items()}


# --------------------------------------------------------------------------------------- performer render


def test_render_score_shows_each_step_and_its_output_does_not_change(monkeypatch):
    """Every step of render_score reports progress (here in a log, every update a line); with bars or
    without, the same audio."""
    import pipeline.inference.runtime.render as inference_render
    from pipeline.progress import progress_bar as real_bar
    from tests.test_inference import long_score, small_models

    models, notes = small_models(), long_score(160)
    quiet = inference_render.render_score(models, notes, "ben", tempo_qpm=120.0)
    stream = io.StringIO()

    def logged(total, desc, unit="", **kwargs):
        return real_bar(total, desc, unit, stream=stream, log_interval=0.0, **kwargs)

    monkeypatch.setattr(inference_render, "progress_bar", logged)
    shown = inference_render.render_score(models, notes, "ben", tempo_qpm=120.0)
    text = stream.getvalue()
    for step, unit in (("timing", "windows"), ("mel", "windows"), ("vocoder", "frames")):
        assert f"render: {step}: 100% " in text and unit in text, text
    assert "ETA" in text
    assert np.array_equal(shown.audio, quiet.audio) and np.array_equal(shown.mel, quiet.mel)


# --------------------------------------------------------------------------------------- performer mel


@pytest.mark.parametrize("chunk_frames", [37, 64, 100, 256, 481, 10_000])  # 482 frames: rests of 1, 34, 82, 226
@pytest.mark.parametrize("samples", [123_457, 123_392])  # a part frame at the end, none
def test_the_chunked_log_mel_is_the_whole_one(chunk_frames, samples, monkeypatch):
    from pipeline.config import load_mel
    from pipeline.mel import log_mel, log_mel_in_chunks

    config = load_mel(REPO / "params.yaml")
    audio = np.random.default_rng(3).normal(0, 0.2, samples).astype(np.float32)
    whole = log_mel(audio, config)
    stream = io.StringIO()

    def logged(total, desc, unit="", **kwargs):
        return progress_bar(total, desc, unit, stream=stream, log_interval=0.0, **kwargs)

    monkeypatch.setattr("pipeline.mel.progress_bar", logged)
    chunked = log_mel_in_chunks(audio, config, chunk_frames=chunk_frames, progress="mel")
    assert chunked.dtype == np.float32 and chunked.shape == whole.shape == (config.n_mels, samples // config.hop_length)
    assert np.array_equal(chunked, whole)
    assert stream.getvalue().splitlines()[-1].startswith(f"mel: 100% {whole.shape[1]}/{whole.shape[1]} frames")
