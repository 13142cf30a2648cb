"""A performance as a MIDI file (`perform --midi`, `render --midi`): what any DAW plays, read back exactly."""

from __future__ import annotations

import subprocess
import sys

import mido
import numpy as np
import pandas as pd
import pytest

from pipeline.errors import PipelineError
from pipeline.scores import (
    midi_notes_and_times,
    performance_midi_performer,
    read_score,
    write_performance_midi,
)
from tests.test_scores import write_midi


def test_a_performance_midi_reads_back_within_a_millisecond(tmp_path):
    rng = np.random.default_rng(3)
    n = 200
    onset = np.sort(rng.uniform(0, 90, n))
    offset = onset + rng.uniform(0.05, 0.4, n)
    pitch = rng.integers(55, 100, n)
    velocity = rng.integers(20, 128, n)
    path = tmp_path / "played.mid"
    write_performance_midi(path, pitch, onset, offset, velocity, performer="bruno", program=41, title="tune")
    table, onset_back, offset_back = midi_notes_and_times(path)
    order = np.lexsort((pitch, onset))
    back = np.lexsort((table.pitch, onset_back))  # the reader sorts on its 24-per-quarter grid: re-sort exactly
    np.testing.assert_array_equal(table.pitch[back], pitch[order])
    np.testing.assert_array_equal(table.velocity[back], velocity[order])
    assert np.abs(onset_back[back] - onset[order]).max() < 1e-3
    # a note still sounding when its key starts again ends there; every other one keeps its length
    expected = offset.copy()
    for i in range(n):
        later = onset[(pitch == pitch[i]) & (onset > onset[i])]
        if len(later):
            expected[i] = min(offset[i], later.min())
    assert (expected < offset).any()  # the case is exercised
    assert np.abs(offset_back[back] - expected[order]).max() < 1e-3
    assert performance_midi_performer(path) == "bruno"
    programs = [m.program for m in mido.MidiFile(filename=str(path)).tracks[0] if m.type == "program_change"]
    assert programs == [41]


def test_an_overlapping_note_of_the_same_key_ends_where_the_next_starts(tmp_path):
    path = tmp_path / "legato.mid"
    write_performance_midi(
        path,
        np.array([60, 60, 64]),
        np.array([0.0, 0.5, 0.5]),
        np.array([1.0, 1.5, 0.6]),
        np.full(3, 90),
        performer="ana",
    )
    _, onset, offset = midi_notes_and_times(path)
    np.testing.assert_allclose(onset, [0.0, 0.5, 0.5], atol=1e-3)
    np.testing.assert_allclose(offset, [0.5, 1.5, 0.6], atol=1e-3)


def test_bad_performances_are_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "bad.mid"
    with pytest.raises(PipelineError, match="finite and >= 0"):
        write_performance_midi(path, [60], [np.nan], [1.0], [80], performer="ana")
    with pytest.raises(PipelineError, match="one pitch, onset, offset and velocity"):
        write_performance_midi(path, [60, 61], [0.0], [1.0], [80], performer="ana")
    assert not path.exists()


@pytest.mark.slow
def test_perform_writes_the_performance_as_midi_and_its_timing_lined_up_with_the_score(tmp_path):
    score = tmp_path / "tune.mid"
    write_midi(score, [(i * 0.5, 0.5, 60 + (i % 5), 80) for i in range(12)], tempo_bpm=120)
    midi, truth = tmp_path / "played.mid", tmp_path / "truth.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "perform",
            score,
            "-o",
            tmp_path / "a.wav",
            "--performer",
            "bruno",
            "--truth",
            truth,
            "--midi",
            midi,
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    played = pd.read_csv(truth)
    table = read_score(score)
    assert list(played.columns) == ["note_id", "pitch", "score_onset_beats", "score_duration_beats", "onset", "offset"]
    np.testing.assert_array_equal(played["pitch"], table.pitch)
    np.testing.assert_allclose(played["score_onset_beats"], np.arange(12) * 0.5)
    assert np.diff(played["onset"]).std() > 0.002  # expressive, not the score's even grid
    back, onset, offset = midi_notes_and_times(midi)
    np.testing.assert_array_equal(back.pitch, played["pitch"])
    np.testing.assert_allclose(onset, played["onset"], atol=1e-3)
    np.testing.assert_allclose(offset, played["offset"], atol=1e-3)
    assert performance_midi_performer(midi) == "bruno"
    bad = subprocess.run(
        [sys.executable, "-m", "pipeline", "perform", score, "-o", tmp_path / "b.wav", "--midi", tmp_path / "x.wav"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "--midi" in bad.stderr and not (tmp_path / "b.wav").exists()
