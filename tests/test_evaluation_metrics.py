"""Evaluation metrics on cases with known answers."""

import numpy as np
import pytest

from pipeline.evaluation import metrics as m
from tests._params import MEL

FRAME_RATE = MEL.sample_rate / MEL.hop_length

SR = 16000
pytestmark = pytest.mark.usefixtures("one_thread")


def tone(midi: float, seconds: float, harmonics: int = 4) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    f = 440.0 * 2 ** ((midi - 69) / 12)
    return (sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, harmonics + 1)) * 0.3).astype(np.float32)


def plucks(onsets_s, seconds: float, midi: float = 64) -> np.ndarray:
    out = np.zeros(int(seconds * SR), np.float32)
    for i, on in enumerate(onsets_s):
        note = tone(midi + (i % 3) * 2, 0.25) * np.exp(-np.arange(int(0.25 * SR)) / (0.06 * SR)).astype(np.float32)
        note[-160:] *= np.linspace(1, 0, 160, dtype=np.float32)  # no click where the note is cut
        start = int(on * SR)
        out[start : start + len(note)] += note[: len(out) - start]
    return out


def test_identical_signals_score_zero_and_shifts_grow_the_distance():
    audio = plucks([0.1, 0.4, 0.7, 1.0], 1.5)
    assert m.multi_resolution_stft_distance(audio, audio) == pytest.approx(0.0, abs=1e-9)
    assert m.audio_mel_mse(audio, audio, MEL) == pytest.approx(0.0, abs=1e-12)
    shifted = [m.multi_resolution_stft_distance(np.roll(audio, int(s * SR)), audio) for s in (0.01, 0.04, 0.1)]
    assert 0 < shifted[0] < shifted[1] < shifted[2]
    assert m.audio_mel_mse(np.roll(audio, int(0.04 * SR)), audio, MEL) > 0.1


def test_mel_mse_crops_to_common_frames_and_checks_bins():
    a, b = np.zeros((80, 10)), np.ones((80, 12))
    assert m.mel_mse(a, b) == 1.0 and m.mel_mse(2 * b, b[:, :5]) == 1.0
    with pytest.raises(ValueError, match="mel bins differ"):
        m.mel_mse(np.zeros((80, 4)), np.zeros((40, 4)))


def test_timing_errors_exact_numbers():
    """Per-note errors (timing_errors: valid notes only) and their summary, as the evaluate stage computes them."""
    import torch

    from pipeline.evaluation.scoring import TimingErrors
    from pipeline.evaluation.summary import timing_summary
    from pipeline.evaluation.timing import timing_errors

    batch = {
        "target_onset": torch.tensor([[0.0, 12.0, 20.0, 99.0]]),
        "target_duration": torch.tensor([[6.0, 5.0, 2.0, 99.0]]),
        "note_mask": torch.tensor([[True, True, True, False]]),
    }  # the last note is padding
    onset, duration = timing_errors(torch.tensor([[0.0, 10.0, 22.0, 0.0]]), torch.full((1, 4), 5.0), batch)
    np.testing.assert_array_equal(onset, [0, 2, 2])
    np.testing.assert_array_equal(duration, [1, 0, 3])
    errors = TimingErrors(frame_seconds=0.016)
    errors.add("A", "c0", onset[:1], duration[:1])  # the same notes in two clips: pooled over notes
    errors.add("A", "c1", onset[1:], duration[1:])
    table = timing_summary(errors)["A"]
    assert table["onset_error_frames"] == pytest.approx(4 / 3)
    assert table["onset_error_ms"] == pytest.approx(4 / 3 * 16)
    assert table["median_onset_error_ms"] == pytest.approx(32.0)
    assert table["duration_error_ms"] == pytest.approx(64 / 3) and table["notes"] == 3


def test_constant_tempo_baselines_at_exact_and_class_tempo():
    """A performance played exactly at 100 qpm: the exact-tempo baseline has zero error; the class
    tempo (what the alignment model is told) is the class centre, off by the class's rounding."""
    import torch

    from pipeline.evaluation.timing import constant_tempo, timing_errors
    from pipeline.models.alignment import AlignmentModel, model_class_tempo
    from pipeline.models.tempo import tempo_centers, tempo_classes

    model = AlignmentModel(
        frame_rate=FRAME_RATE, n_performers=1, n_tempo_classes=40, d_model=16, layers=1, attention_dim=8, ffn_dim=16
    )
    class_tempo_qpm = lambda q: model_class_tempo(model, q)  # noqa: E731

    qpm = torch.tensor([100.0])
    ticks = torch.tensor([[0, 24, 48, 96]])
    frame_rate = 16000 / 256
    frames_per_tick = frame_rate * 60 / (100.0 * 24)
    batch = {
        "tempo_qpm": qpm,
        "score_onset": ticks,
        "score_duration": torch.full((1, 4), 24),
        "target_onset": ticks.float() * frames_per_tick,
        "target_duration": torch.full((1, 4), 24.0) * frames_per_tick,
        "note_mask": torch.ones(1, 4, dtype=torch.bool),
    }
    exact_onset, exact_duration = timing_errors(*constant_tempo(batch, frame_rate), batch)
    assert exact_onset.max() < 1e-4 and exact_duration.max() < 1e-4
    centre = float(tempo_centers(40)[int(tempo_classes(qpm, 40)[0])])
    assert float(class_tempo_qpm(qpm)[0]) == pytest.approx(centre, rel=1e-6) and abs(centre / 100 - 1) < 0.03
    coarse, _ = timing_errors(*constant_tempo(batch, frame_rate, qpm=class_tempo_qpm(qpm)), batch)
    # the last onset (96 ticks = 1 bar of 4 quarters) is off by 96 ticks x the tempo ratio error
    expected = 96 * frame_rate * 60 / 24 * abs(1 / centre - 1 / 100)
    assert coarse[-1] == pytest.approx(expected, rel=1e-4) and coarse[0] == 0
