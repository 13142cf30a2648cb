import numpy as np
import pytest

from pipeline.alignment.align import align_score_to_audio, warp_function
from pipeline.alignment.dtw import band_from_path, banded_dtw
from pipeline.alignment.features import SyncFeatures
from pipeline.alignment.metrics import onset_error_stats
from pipeline.rendering import Instrument, Performance, render
from pipeline.scores import NoteTable
from tests._params import PARAMS


def test_banded_dtw_recovers_a_known_warp_of_random_features():
    rng = np.random.default_rng(0)
    x = rng.random((120, 12)).astype(np.float32)
    warp = np.clip(np.round(np.linspace(0, 119, 180) + 6 * np.sin(np.linspace(0, 3, 180))), 0, 119).astype(int)
    y = x[warp]
    unit = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    fx = SyncFeatures(unit(x), np.zeros_like(x), np.zeros(len(x)), 100.0)
    fy = SyncFeatures(unit(y), np.zeros_like(y), np.zeros(len(y)), 100.0)
    path = banded_dtw(fx, fy, np.zeros(120, np.int64), np.full(120, 180, np.int64))
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (119, 179)
    assert np.all(np.diff(path, axis=0) >= 0)
    rows, cols = warp_function(path)
    # every column j of y should map back to the row it was copied from
    assert np.mean(np.abs(np.interp(np.arange(180), cols, rows) - warp)) < 1.0


def test_band_from_path_contains_the_projected_path_and_is_monotone():
    coarse = np.array([[0, 0], [1, 1], [1, 2], [2, 3]])
    lo, hi = band_from_path(coarse, 10, 30, 40, radius=3)
    assert lo[0] == 0 and hi[-1] == 40
    assert np.all(np.diff(lo) >= 0) and np.all(np.diff(hi) >= 0) and np.all(lo < hi)
    for a, b in coarse:
        assert np.all(lo[a * 10 : (a + 1) * 10] <= b * 10) and np.all(hi[a * 10 : (a + 1) * 10] >= (b + 1) * 10)


def test_dtw_aligns_a_rendered_melody_played_with_a_known_tempo_warp():
    """Score at 120 qpm; the 'recording' plays it with a sinusoidal tempo warp on another SoundFont."""
    n = 40
    onset = np.arange(n) * 12
    pitch = np.array([67, 69, 71, 72, 74, 76, 74, 72, 71, 69] * 4)
    notes = NoteTable(onset, np.full(n, 12), pitch, np.full(n, 90), np.zeros(n), tempo_qpm=120, name="warp")
    score_on, score_off = notes.seconds()
    warp = lambda t: 0.3 + 1.15 * t + 0.35 * np.sin(2 * np.pi * t / 6.0)  # noqa: E731  monotone: slope > 0
    truth_on, truth_off = warp(score_on), warp(score_off) - 0.02
    perf = Performance(truth_on, truth_off, pitch, np.full(n, 90))
    audio = render(perf, Instrument("FluidR3_GM.sf2", program=40, reverb_send=20), 16000).mean(axis=1)
    result = align_score_to_audio(notes, audio, 16000, PARAMS.align)
    stats = onset_error_stats(result.onset, truth_on)
    assert stats["median_ms"] <= 20 and stats["within_50ms"] >= 0.9, stats
    assert np.all(np.diff(result.onset) >= 0)
    assert np.all(result.offset > result.onset)


def test_error_statistics():
    stats = onset_error_stats(np.array([0.0, 0.01, 0.1, 1.0]), np.zeros(4))
    assert stats["median_ms"] == pytest.approx(55.0)
    assert stats["within_50ms"] == 0.5
    assert stats["notes"] == 4
