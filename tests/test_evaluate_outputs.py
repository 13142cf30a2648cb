"""The evaluate stage refuses output it cannot score honestly, naming the system, and keeps every
value per clip so that the table's intervals and paired differences come from the same clips."""

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.evaluation.scoring import ClipInfo, Scores, TimingErrors, check_output
from pipeline.evaluation.summary import compare, summarise
from pipeline.evaluation.systems import ClipOutput
from tests._params import MEL

HOP, MELS = MEL.hop_length, MEL.n_mels


def clip(frames: int = 20) -> ClipInfo:
    return ClipInfo(
        id="rec@0",
        polyphonic=False,
        frames=frames,
        pitch=np.array([60]),
        onset_frame=np.array([0]),
        offset_frame=np.array([frames]),
        starts_in_clip=np.array([True]),
    )


def noise(samples: int) -> np.ndarray:
    return (np.random.default_rng(0).standard_normal(samples) * 0.1).astype(np.float32)


@pytest.mark.parametrize(
    "audio, mel, fault",
    [
        (np.full(20 * HOP, np.nan, np.float32), None, "NaN"),
        (np.zeros(20 * HOP, np.float32), None, "silent"),
        (noise(19 * HOP), None, "expected"),
        (noise(20 * HOP), np.zeros((MELS, 21), np.float32), "mel has shape"),
        (noise(20 * HOP), np.full((MELS, 20), np.inf, np.float32), "mel holds NaN"),
    ],
)
def test_bad_output_fails_naming_the_system(audio, mel, fault):
    with pytest.raises(PipelineError, match=fault) as err:
        check_output("Deep Performer", ClipOutput(audio, mel), clip(), HOP, MELS)
    message = str(err.value)
    assert "'Deep Performer'" in message and "rec@0" in message and "\n" not in message


def test_good_output_passes():
    check_output("Recording", ClipOutput(noise(20 * HOP), np.zeros((MELS, 20), np.float32)), clip(), HOP, MELS)


def test_table_cells_and_paired_differences_come_from_per_clip_values():
    scores = Scores()
    rng = np.random.default_rng(0)
    for i in range(40):
        base = rng.normal(0.6, 0.15)
        scores.add("A", "note_onset_f1", f"c{i}", base + 0.05)
        scores.add("B", "note_onset_f1", f"c{i}", base)
        scores.add("A", "mel_mse", f"c{i}", float("nan"))  # a NaN clip is left out, not averaged in
    timing = TimingErrors(frame_seconds=0.01)
    timing.add("A", "c0", np.array([1.0, 3.0]), np.array([2.0, 2.0]))
    timing.add("A", "c1", np.array([], np.float32), np.array([], np.float32))  # no notes: no value
    timing.score(scores)
    table = summarise(scores, ["A", "B"], resamples=300, confidence=0.95, seed=0)
    a = table.cell("A", "note_onset_f1")
    assert a.n == 40 and a.low < a.mean < a.high
    assert np.isnan(table.mean.loc["A", "mel_mse"]) and table.clips.loc["A", "mel_mse"] == 0
    assert table.mean.loc["A", "onset_error_ms"] == pytest.approx(20.0)  # (10 + 30) ms over two notes
    assert table.clips.loc["A", "onset_error_ms"] == 1 and np.isnan(table.mean.loc["B", "onset_error_ms"])
    (diff,) = compare(scores, [("A", "B")], resamples=300, confidence=0.95, seed=0)
    assert diff.metric == "note_onset_f1" and diff.difference.mean == pytest.approx(0.05)
    assert diff.significant and diff.better is True


def test_a_metric_without_a_value_on_a_clip_says_why_and_pooled_metrics_weigh_by_notes():
    from pipeline.evaluation.scoring import NotScored, Pooled, record

    scores = Scores()
    record(scores, "A", "note_onset_f1", "c0", NotScored("no note starts in the clip"))
    record(scores, "A", "note_onset_f1", "c1", NotScored("no note starts in the clip"))
    record(scores, "A", "note_onset_f1", "c2", 0.5)
    record(scores, "A", "multipitch_accuracy", "c0", float("nan"))
    record(scores, "A", "note_pitch_accuracy", "c0", Pooled(1.0, 1.0))  # 1 of 1 note right
    record(scores, "A", "note_pitch_accuracy", "c1", Pooled(1.0, 3.0))  # 1 of 3
    record(scores, "A", "note_pitch_accuracy", "c2", Pooled(0.0, 0.0))  # no note sounds alone
    assert scores.values["A"]["note_onset_f1"] == {"c2": 0.5}
    assert scores.not_scored("A") == {
        "multipitch_accuracy": {"no score note to compare with": 1},
        "note_onset_f1": {"no note starts in the clip": 2},
        "note_pitch_accuracy": {"nothing to pool on the clip": 1},
    }
    table = summarise(scores, ["A"], resamples=100, confidence=0.95, seed=0)
    assert table.mean.loc["A", "note_pitch_accuracy"] == pytest.approx(0.5)  # 2 of 4 notes, not (1 + 1/3) / 2
