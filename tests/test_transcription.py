"""Transcriber (Basic Pitch on onnxruntime) and the pitch metrics, on audio with known notes."""

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.evaluation import pitch as p
from pipeline.evaluation import transcription as t
from pipeline.rendering import Instrument, Performance, render

SR = 16000
SCALE = np.array([60, 62, 64, 65, 67, 69, 71, 72])


@pytest.fixture(scope="module")
def transcriber() -> t.Transcriber:
    return t.Transcriber(threads=1)


def fluidsynth(onsets, offsets, pitches, program: int = 0) -> np.ndarray:
    perf = Performance(
        np.asarray(onsets, float), np.asarray(offsets, float), np.asarray(pitches), np.full(len(pitches), 100)
    )
    return render(perf, Instrument("FluidR3_GM.sf2", program=program, reverb_send=0), SR, tail=0.5).mean(axis=1)


@pytest.fixture(scope="module")
def scale():
    """A C-major scale on the violin (the corpus's instrument; the default decoding is tuned for
    bowed strings), 0.4 s apart: (audio, intervals, pitches)."""
    onsets = 0.2 + 0.4 * np.arange(len(SCALE))
    intervals = np.stack([onsets, onsets + 0.35], axis=1)
    return fluidsynth(intervals[:, 0], intervals[:, 1], SCALE, program=40), intervals, SCALE.astype(float)


@pytest.fixture(scope="module")
def scale_transcription(transcriber, scale):
    return transcriber.transcribe(scale[0], SR)


def tone(midi: float, seconds: float, harmonics: int = 4) -> np.ndarray:
    time = np.arange(int(seconds * SR)) / SR
    f = 440.0 * 2 ** ((midi - 69) / 12)
    return (sum(np.sin(2 * np.pi * f * k * time) / k for k in range(1, harmonics + 1)) * 0.3).astype(np.float32)


def test_the_scale_is_transcribed_and_a_semitone_shift_is_not(scale, scale_transcription):
    _, intervals, pitches = scale
    right = t.note_metrics(scale_transcription, intervals, pitches)
    assert right["note_onset_f1"] >= 0.8 and right["note_onset_recall"] >= 0.8
    assert set(SCALE) <= set(scale_transcription.pitches.astype(int))
    shifted = t.note_metrics(scale_transcription, intervals, pitches + 1)
    assert shifted["note_onset_f1"] <= 0.1 and shifted["note_f1"] <= 0.1
    late = t.note_metrics(scale_transcription, intervals + 0.15, pitches)  # onsets 150 ms off: no match
    assert late["note_onset_f1"] <= 0.1
    # tuning: the same score, declared 100 cents flat, names the notes a semitone up
    assert t.note_metrics(scale_transcription, intervals, pitches + 1, tuning_cents=-100)["note_onset_f1"] >= 0.8


def test_a_chord_scores_far_above_a_wrong_chord(transcriber):
    chord = [60, 64, 67]
    audio = fluidsynth([0.1] * 3, [1.5] * 3, chord)
    est = transcriber.transcribe(audio, SR)
    intervals = np.array([[0.1, 1.5]] * 3)
    right = t.multipitch_accuracy(est, intervals, chord)
    wrong = t.multipitch_accuracy(est, intervals, [61, 65, 68])
    assert right >= 0.6 and wrong <= 0.1
    assert t.multipitch_accuracy(est, intervals[:2], chord[:2]) < right  # the G is a false alarm then
    with pytest.raises(ValueError, match="3 intervals but 2 pitches"):
        t.multipitch_accuracy(est, intervals, chord[:2])
    active = {int(q) for frame in est.frame_pitches()[20:100] for q in frame}  # 0.23-1.15 s
    assert set(chord) <= active


def test_transcription_is_deterministic(transcriber, scale, scale_transcription):
    again = t.Transcriber(threads=1).transcribe(scale[0], SR)
    assert np.array_equal(again.intervals, scale_transcription.intervals)
    assert np.array_equal(again.pitches, scale_transcription.pitches)
    assert np.array_equal(again.frame_roll, scale_transcription.frame_roll)
    one, two = transcriber.posteriors(scale[0], SR), transcriber.posteriors(scale[0], SR)
    for key in ("note", "onset", "contour", "frame_times"):
        assert getattr(one, key).tobytes() == getattr(two, key).tobytes()


def test_frame_grid_and_input_forms(transcriber, scale):
    audio = scale[0]
    post = transcriber.posteriors(audio, SR)
    n_model = len(t._to_model_rate(audio, SR))
    assert post.note.shape == (-(-n_model // t.MODEL_HOP), 88) and post.contour.shape[1] == 264
    assert np.allclose(np.diff(post.frame_times), t.MODEL_HOP / t.MODEL_SAMPLE_RATE)
    stereo = transcriber.posteriors(np.stack([audio, audio], axis=1), SR)
    assert np.array_equal(stereo.note, post.note)
    # a 12 s signal spans several network windows; a piano note (fast attack) in the second window
    # is found on time by the network alone (no latency correction)
    long = np.zeros(12 * SR, np.float32)
    note = fluidsynth([0.0], [0.5], [69])[:SR]
    long[int(3.0 * SR) : int(3.0 * SR) + len(note)] += note
    est = t.Transcriber(latency_seconds=0.0).transcribe(long, SR)
    assert len(est.pitches) == 1 and est.pitches[0] == 69 and abs(est.intervals[0, 0] - 3.0) < 0.03


def test_empty_and_silent_inputs(transcriber, scale_transcription):
    empty = transcriber.transcribe(np.zeros(0, np.float32), SR)
    assert empty.intervals.shape == (0, 2) and len(empty.frame_times) == 0
    silent = transcriber.transcribe(np.zeros(SR, np.float32), SR)
    assert len(silent) == 0
    intervals, pitches = np.array([[0.2, 0.5]]), np.array([60.0])
    assert all(v == 0.0 for v in t.note_metrics(silent, intervals, pitches).values())
    assert all(np.isnan(v) for v in t.note_metrics(scale_transcription, np.zeros((0, 2)), []).values())
    assert np.isnan(t.multipitch_accuracy(scale_transcription, np.zeros((0, 2)), []))
    assert t.multipitch_accuracy(silent, intervals, pitches) == 0.0


def test_a_note_cut_by_the_clip_start_is_neither_a_miss_nor_a_false_alarm():
    audio = fluidsynth([0.0, 1.1], [1.0, 1.5], [60, 64], program=40)[int(0.5 * SR) :]  # a clip from 0.5 s
    est = t.Transcriber(melodia_trick=False).transcribe(audio, SR)  # onset-started notes only
    intervals, pitches = np.array([[0.0, 0.5], [0.6, 1.0]]), np.array([60.0, 64.0])
    heard = np.array([False, True])
    assert t.note_metrics(est, intervals, pitches, ref_onset_heard=heard)["note_onset_f1"] == 1.0
    assert t.note_metrics(est, intervals, pitches)["note_onset_recall"] == 0.5  # the cut note's onset is not heard
    # an estimated note of the cut pitch at the clip start is dropped, not counted as a false alarm
    extra = t.Transcription(
        np.array([[0.01, 0.5], [0.6, 1.0]]), np.array([60.0, 64.0]), est.frame_times, est.frame_roll
    )
    assert t.note_metrics(extra, intervals, pitches, ref_onset_heard=heard)["note_onset_precision"] == 1.0
    assert t.note_metrics(extra, intervals[1:], pitches[1:])["note_onset_precision"] == 0.5


def test_missing_package_or_model_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr(t.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PipelineError, match="basic-pitch"):
        t.model_path()
    monkeypatch.undo()
    monkeypatch.setattr(t, "MODEL_FILE", ("saved_models", "nothing.onnx"))
    with pytest.raises(PipelineError, match="lacks its ONNX model"):
        t.model_path()


def test_tuning_runs_the_network_once_per_item_and_picks_the_best(transcriber, scale, monkeypatch):
    audio, intervals, pitches = scale
    calls = []
    real = t.Transcriber.posteriors
    monkeypatch.setattr(t.Transcriber, "posteriors", lambda self, a, sr: calls.append(1) or real(self, a, sr))
    items = [(audio, SR, intervals, pitches), t.TuningItem(audio, SR, intervals, pitches + 1)]
    best, rows = t.tune_thresholds(
        items, {"onset_threshold": (0.5, 0.99), "frame_threshold": (0.3, 0.5)}, transcriber=transcriber
    )
    assert len(calls) == 2 and len(rows) == 4
    assert best["note_onset_f1"] == max(r["note_onset_f1"] for r in rows)
    assert best["onset_threshold"] == 0.5  # an onset threshold of 0.99 finds (almost) nothing
    assert 0.35 <= best["note_onset_f1"] <= 0.55  # right on the first item, ~0 on the shifted one
    assert best["min_note_seconds"] == transcriber.decoding.min_note_seconds  # fields not in the grid: kept
    with pytest.raises(ValueError, match="not Decoding fields: onset"):
        t.tune_thresholds(items, {"onset": (0.5,)}, transcriber=transcriber, posteriors=[None, None])


@pytest.mark.parametrize("tracker", [pytest.param(t, marks=pytest.mark.slow) if t == "pyin" else t for t in p.TRACKERS])
def test_f0_metrics_on_a_harmonic_tone(tracker):  # pyin takes seconds on a 1-second tone
    audio = tone(67, 1.0)
    intervals = [[0.1, 0.9]]
    right = p.f0_metrics(audio, SR, 256, intervals, [67], tracker=tracker)
    assert set(right) == {"raw_pitch_accuracy", "voicing_recall", "note_pitch_right", "note_pitch_notes"}
    assert right["raw_pitch_accuracy"] >= 0.95 and right["voicing_recall"] >= 0.95
    assert right["note_pitch_right"] == right["note_pitch_notes"] == 1.0
    assert p.f0_metrics(audio, SR, 256, intervals, [68], tracker=tracker)["raw_pitch_accuracy"] <= 0.05
    assert p.f0_metrics(audio, SR, 256, intervals, [55], tracker=tracker)["raw_pitch_accuracy"] <= 0.05  # octave
    flat = p.f0_metrics(audio, SR, 256, intervals, [68], tuning_cents=-100, tracker=tracker)
    assert flat["raw_pitch_accuracy"] >= 0.95
    silent = p.f0_metrics(np.zeros(SR, np.float32), SR, 256, intervals, [67], tracker=tracker)
    assert silent["voicing_recall"] <= 0.05
    nothing = p.f0_metrics(audio, SR, 256, [[2.0, 3.0]], [67], tracker=tracker)
    assert np.isnan(nothing["raw_pitch_accuracy"]) and np.isnan(nothing["voicing_recall"])


def test_raw_pitch_counts_right_guesses_in_frames_called_unvoiced():
    track = p.F0Track(
        np.array([0.0, 0.1, 0.2, 0.3]), np.array([60.2, 60.0, 72.0, np.nan]), np.array([True, False, True, False])
    )
    scores = p.score_f0(track, [[0.0, 0.4]], [60])
    assert scores == {"raw_pitch_accuracy": 0.5, "voicing_recall": 0.5}
    # the note's median f0: of 60.2, 60, 72 and no estimate (counted as wrong), (60.2 + 72) / 2: wrong
    assert p.score_note_pitch(track, [[0.0, 0.4]], [60]) == (0, 1)
    assert p.score_note_pitch(track, [[0.0, 0.3]], [60]) == (1, 1)  # of 60.2, 60 and 72: 60.2


def test_pitch_is_scored_on_the_frames_of_a_double_stop_clip_where_one_note_sounds():
    # 0.0-0.2 s: A4 alone; 0.2-0.4 s: a double stop A4 + E5 (not scored: one tracker, two pitches);
    # 0.4-0.6 s: E5 alone, which the tracker gets an octave wrong
    times = np.arange(0.0, 0.6, 0.05)
    midi = np.where(times < 0.4, 69.0, 88.0)
    track = p.F0Track(times, midi, np.ones(len(times), bool))
    intervals, pitches = [[0.0, 0.4], [0.2, 0.6]], [69, 76]
    scores = p.score_f0(track, intervals, pitches, transition_seconds=0.0)
    assert scores["raw_pitch_accuracy"] == pytest.approx(0.5)  # 4 frames right of the 8 where one note sounds
    assert p.score_note_pitch(track, intervals, pitches) == (1, 2)
    assert np.isnan(p.score_f0(track, [[0.0, 0.6], [0.0, 0.6]], [69, 76])["raw_pitch_accuracy"])  # all double
    with pytest.raises(ValueError, match="unknown f0 tracker"):
        p.f0_track(np.zeros(10, np.float32), SR, 256, tracker="crepe")
