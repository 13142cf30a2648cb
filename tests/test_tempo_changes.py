"""Every tempo change of a score is honoured: the tempo map of MIDI and MusicXML scores, seconds along
it, its CSV round trip, `perform` and `render` at the score's true length, no silent tempo clamp."""

from __future__ import annotations

import subprocess
import sys
import warnings
from dataclasses import replace

import mido
import numpy as np
import pandas as pd
import pytest

from pipeline.errors import PipelineError
from pipeline.inference.models import PerformerModels
from pipeline.inference.runtime.render import TempoRangeWarning, predict_timing, render_score
from pipeline.models.alignment import AlignmentModel
from pipeline.performers import PERFORMERS
from pipeline.scores import NoteTable, read_score, tempo_map_rows
from tests._params import MEL

TPB = 480  # MIDI ticks per beat of the files written here
SLOW, FAST = 60.0, 240.0
SLOW_BEATS, FAST_BEATS = 8, 32  # 8 s at 60 qpm, then 8 s at 240 qpm
TRUE_SECONDS = SLOW_BEATS * 60 / SLOW + FAST_BEATS * 60 / FAST  # 16 s
FRAME_RATE = MEL.sample_rate / MEL.hop_length
NAMES = ("ana", "ben")
SMALL_ALIGNMENT = dict(d_model=32, layers=1, heads=2, attention_dim=16, ffn_dim=32, dropout=0.0)


def melody() -> list[tuple[float, float, int]]:
    """(onset beats, duration beats, pitch): quarters through the slow part, eighths through the fast one."""
    slow = [(float(b), 1.0, 60 + b % 12) for b in range(SLOW_BEATS)]
    fast = [(SLOW_BEATS + i / 2, 0.5, 62 + i % 12) for i in range(2 * FAST_BEATS)]
    return slow + fast


def note_events(notes, channel=0) -> list[tuple[int, int, mido.Message]]:
    events = []
    for onset, length, pitch in notes:
        events.append((round(onset * TPB), 1, mido.Message("note_on", channel=channel, note=pitch, velocity=80)))
        events.append((round((onset + length) * TPB), 0, mido.Message("note_off", channel=channel, note=pitch)))
    return events


def to_track(events) -> mido.MidiTrack:
    track, now = mido.MidiTrack(), 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    return track


def tempo_event(beat: float, qpm: float):
    return (round(beat * TPB), 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm)))


def write_type1(path, tempos=((0, SLOW), (SLOW_BEATS, FAST))) -> None:
    """A tempo track (track 0) and a note track, like most sequencers write."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TPB)
    midi.tracks.append(to_track([tempo_event(beat, qpm) for beat, qpm in tempos]))
    midi.tracks.append(to_track(note_events(melody())))
    midi.save(path)


def write_type0(path) -> None:
    """One track, the tempo events among the notes."""
    midi = mido.MidiFile(type=0, ticks_per_beat=TPB)
    midi.tracks.append(to_track([tempo_event(0, SLOW), tempo_event(SLOW_BEATS, FAST), *note_events(melody())]))
    midi.save(path)


def write_musicxml(path) -> None:
    """Two measures of 4/4 under a metronome mark of 60, then eight under one of 240."""
    from music21 import meter, note, stream, tempo

    part = stream.Part()
    notes = melody()
    for number in range(1, 11):
        measure = stream.Measure(number=number)
        if number == 1:
            measure.append(meter.TimeSignature("4/4"))
            measure.append(tempo.MetronomeMark(number=SLOW))
        if number == 3:
            measure.append(tempo.MetronomeMark(number=FAST))
        for onset, length, pitch in notes:
            if 4 * (number - 1) <= onset < 4 * number:
                measure.append(note.Note(pitch, quarterLength=length))
        part.append(measure)
    score = stream.Score()
    score.insert(0, part)
    score.write("musicxml", fp=str(path))


def expected_map() -> np.ndarray:
    return np.array([[0.0, SLOW], [SLOW_BEATS * 24.0, FAST]])


def constant_tempo_models(n_tempo_classes: int = 400) -> PerformerModels:
    """Untrained models: the alignment model plays every window at exactly its tempo class's centre,
    with classes fine enough (400 over 30-300 qpm: +-0.3 %) that the class is the tempo asked for."""
    import torch

    from pipeline.models.hifigan import Generator
    from pipeline.models.synthesis import SynthesisModel

    torch.manual_seed(0)
    alignment = AlignmentModel(
        frame_rate=FRAME_RATE, n_performers=2, performer_names=NAMES, n_tempo_classes=n_tempo_classes, **SMALL_ALIGNMENT
    ).eval()
    synthesis = SynthesisModel(
        n_performers=2,
        performer_names=NAMES,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        heads=2,
        attention_dim=16,
        ffn_dim=32,
        dropout=0.0,
    ).eval()
    vocoder = (
        Generator(upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),))
        .eval()
        .remove_weight_norm()
    )
    return PerformerModels(alignment, synthesis, vocoder, MEL)


@pytest.fixture(scope="module")
def midi_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("scores") / "accelerando.mid"
    write_type1(path)
    return path


# ------------------------------------------------------------------------------------------ reading


@pytest.mark.parametrize("kind", ["type0", "type1", "musicxml"])
def test_scores_carry_their_tempo_map(tmp_path, kind):
    path = tmp_path / ("score.musicxml" if kind == "musicxml" else "score.mid")
    {"type0": write_type0, "type1": write_type1, "musicxml": write_musicxml}[kind](path)
    table = read_score(path)
    assert len(table) == SLOW_BEATS + 2 * FAST_BEATS
    np.testing.assert_allclose(table.tempo_map(), expected_map(), rtol=1e-9)
    assert table.tempo_qpm == pytest.approx(SLOW)  # the opening tempo, as before tempo maps
    onset, offset = table.seconds()
    assert offset.max() == pytest.approx(TRUE_SECONDS, abs=1e-6)
    assert onset[SLOW_BEATS] == pytest.approx(SLOW_BEATS * 60 / SLOW, abs=1e-6)  # the first fast note
    assert table.tempo_at(np.array([0, 191, 192, 10_000])).tolist() == pytest.approx([SLOW, SLOW, FAST, FAST])


def test_midi_tempo_events_of_every_track_a_late_first_tempo_and_duplicates(tmp_path):
    """Tempo events in a note track count too; the first tempo holds from tick 0; of two events at one
    tick the first counts (the reader's tempo_qpm always was the first event's); repeats are dropped."""
    path = tmp_path / "late.mid"
    midi = mido.MidiFile(type=1, ticks_per_beat=TPB)
    midi.tracks.append(to_track([tempo_event(2, 90), tempo_event(6, 90), tempo_event(6, 100)]))
    midi.tracks.append(to_track([*note_events(melody()), tempo_event(20, 150), tempo_event(20, 30)]))
    midi.save(path)
    table = read_score(path)
    np.testing.assert_allclose(table.tempo_map(), [[0, 90], [20 * 24, 150]], rtol=1e-6)  # whole microseconds
    assert table.tempo_qpm == pytest.approx(90)


def test_one_tempo_scores_stay_constant_tempo(tmp_path):
    path = tmp_path / "steady.mid"
    write_type1(path, tempos=((0, 72), (4, 72)))  # a repeated tempo is no change
    table = read_score(path)
    assert table.tempo_changes is None and table.tempo_qpm == pytest.approx(72)
    onset, offset = table.seconds()
    np.testing.assert_array_equal(onset, table.onset * (60.0 / (table.tempo_qpm * 24)))  # bit for bit as ever
    np.testing.assert_array_equal(offset, table.offset * (60.0 / (table.tempo_qpm * 24)))


def test_tempo_map_rows_normalises():
    rows = tempo_map_rows([[96, 240], [5, 60], [96, 30], [120, 240]])
    np.testing.assert_array_equal(rows, [[0, 60], [96, 240]])
    for bad in ([], [[0, 0]], [[0, -60]], [[0, np.inf]], [[-1, 60]]):
        with pytest.raises(ValueError):
            tempo_map_rows(bad)


# ------------------------------------------------------------------------------------------ seconds and --tempo


def test_explicit_tempo_scales_the_whole_map(midi_path):
    table = read_score(midi_path)
    np.testing.assert_allclose(table.tempo_map(120), [[0, 120], [192, 480]])
    assert table.seconds(120)[1].max() == pytest.approx(TRUE_SECONDS / 2, abs=1e-9)
    table.tempo_qpm = 30  # assigning the opening tempo scales the map too (what `perform --tempo` does)
    assert table.seconds()[1].max() == pytest.approx(TRUE_SECONDS * 2, abs=1e-9)
    assert table.subset(np.arange(len(table))).seconds()[1].max() == pytest.approx(TRUE_SECONDS * 2, abs=1e-9)
    for bad in (0, -60, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            table.seconds(bad)


def test_truncate_keeps_the_changes_before_the_cut(midi_path):
    table = read_score(midi_path)
    assert table.truncate(192).tempo_changes is None  # the change at 192 plays no kept note
    assert table.truncate(193).tempo_changes is not None


# ------------------------------------------------------------------------------------------ CSV


def test_note_table_csv_round_trips_the_tempo_map(tmp_path, midi_path):
    table = read_score(midi_path)
    table.tempo_qpm = 130.0000520000208  # a tempo .6g would round
    table.to_csv(tmp_path / "t.csv")
    header = (tmp_path / "t.csv").read_text().splitlines()[0]
    fast = repr(float(table.tempo_map()[1, 1]))
    assert header == f"# tempo_qpm=130 resolution=24 tempo_map=0:130.0000520000208;192:{fast}"
    back = NoteTable.from_csv(tmp_path / "t.csv")
    np.testing.assert_array_equal(back.tempo_map(), table.tempo_map())
    assert back.tempo_qpm == table.tempo_qpm
    np.testing.assert_array_equal(back.seconds()[1], table.seconds()[1])


def test_one_tempo_csv_is_byte_for_byte_what_it_was(tmp_path):
    table = NoteTable([0, 24], [24, 48], [60, 62], [64, 70], [0, 0], tempo_qpm=88.5)
    table.to_csv(tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_bytes() == (
        b"# tempo_qpm=88.5 resolution=24\nonset,duration,pitch,velocity,track\n0,24,60,64,0\n24,48,62,70,0\n"
    )
    back = NoteTable.from_csv(tmp_path / "t.csv")  # a file without tempo_map: constant tempo
    assert back.tempo_changes is None and back.tempo_qpm == 88.5


def test_an_unreadable_tempo_map_is_a_one_line_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "# tempo_qpm=60 resolution=24 tempo_map=0:60;96\nonset,duration,pitch,velocity,track\n0,24,60,64,0\n"
    )
    with pytest.raises(PipelineError, match=r"bad\.csv: unreadable header line"):
        NoteTable.from_csv(path)


# ------------------------------------------------------------------------------------------ perform


def plain(name: str = "chiara"):
    """A performer with no rubato, ritardando or jitter, playing full note values at the score's tempo."""
    return replace(PERFORMERS[name], tempo_factor=1.0, rubato_depth=0, final_ritardando=0, jitter_ms=0, legato=1.0)


def test_perform_lasts_the_true_length(midi_path):
    table = read_score(midi_path)
    perf = plain().perform(table)
    assert perf.offset.max() == pytest.approx(TRUE_SECONDS, rel=0.01)
    np.testing.assert_allclose(perf.onset, table.seconds()[0], atol=1e-6)
    table.tempo_qpm = 120  # --tempo 120: twice as fast, changes kept
    assert plain().perform(table).offset.max() == pytest.approx(TRUE_SECONDS / 2, rel=0.01)


def test_a_performer_multiplies_its_rubato_by_the_map(midi_path):
    table = read_score(midi_path)
    rubato = replace(PERFORMERS["bruno"], tempo_factor=1.0)
    seconds = rubato.perform(table).offset.max()
    assert 0.9 * TRUE_SECONDS < seconds < 1.3 * TRUE_SECONDS  # constant 60 qpm would take 40 s


def performer_cli(*args):
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True, text=True)


@pytest.mark.slow
def test_perform_command_follows_the_map(tmp_path, midi_path):
    truth = tmp_path / "truth.csv"
    result = performer_cli(
        "perform", midi_path, "-o", tmp_path / "out.wav", "--performer", "chiara", "--truth", truth,
        "--sample-rate", 16000, "--tempo", 120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = read_score(midi_path)
    table.tempo_qpm = 120
    perf = PERFORMERS["chiara"].perform(table)
    written = pd.read_csv(truth)
    np.testing.assert_allclose(written["offset"], perf.offset, atol=1e-6)
    assert 0.9 * TRUE_SECONDS / 2 < written["offset"].max() < 1.3 * TRUE_SECONDS / 2


@pytest.mark.parametrize(
    ("command", "tempo"), [("perform", "0"), pytest.param("render", "-60", marks=pytest.mark.slow)]
)  # render imports torch before it checks its options: 3-6 s
def test_a_zero_or_negative_tempo_is_a_one_line_error(tmp_path, midi_path, command, tempo):
    models = ("--models", tmp_path) if command == "render" else ()
    bad = performer_cli(command, midi_path, "-o", tmp_path / "bad.wav", "--tempo", tempo, *models)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"error: --tempo must be a positive number of quarter notes per minute, not {tempo}"
    ]
    assert not (tmp_path / "bad.wav").exists()


# ------------------------------------------------------------------------------------------ render


def test_render_lasts_the_true_length(midi_path):
    """An untrained alignment model plays each window at its tempo class: with classes as fine as
    these, the rendering is as long as the score's tempo map says."""
    import torch

    torch.set_num_threads(1)
    models = constant_tempo_models()
    table = read_score(midi_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TempoRangeWarning)  # 60 and 240 qpm are in range: no warning
        result = render_score(models, table, "ben")
    onset, _ = table.seconds()
    assert result.offset_frame.max() / FRAME_RATE == pytest.approx(TRUE_SECONDS, rel=0.01)
    assert np.abs(result.onset_frame / FRAME_RATE - onset).max() < 0.1
    faster = render_score(models, table, "ben", tempo_qpm=70.0)  # --tempo 70: 70 -> 280 qpm
    assert faster.offset_frame.max() / FRAME_RATE == pytest.approx(TRUE_SECONDS * 60 / 70, rel=0.01)
    with pytest.raises(PipelineError, match="tempo must be between 0 and 1000"):
        render_score(models, table, "ben", tempo_qpm=0.0)


def test_default_tempo_classes_follow_the_map_too(midi_path):
    """With the stock 20 classes (each +-6 % around its centre) every window is rescaled from its class's
    centre to its own tempo: the true length within 1 % (not 60 % off as at one tempo)."""
    model = AlignmentModel(frame_rate=FRAME_RATE, n_performers=2, performer_names=NAMES, **SMALL_ALIGNMENT).eval()
    table = read_score(midi_path)
    _, offset = predict_timing(model, table, performer=0, tempo_qpm=table.tempo_qpm)
    assert offset.max() / FRAME_RATE == pytest.approx(TRUE_SECONDS, rel=0.01)


def test_a_trained_like_model_gives_a_valid_timeline_across_the_change(midi_path):
    import torch
    from torch import nn

    model = AlignmentModel(frame_rate=FRAME_RATE, n_performers=2, performer_names=NAMES, **SMALL_ALIGNMENT).eval()
    torch.manual_seed(3)
    nn.init.normal_(model.head.weight, std=0.05)
    nn.init.normal_(model.head.bias, std=0.5)
    onset, offset = predict_timing(model, read_score(midi_path), performer=1, tempo_qpm=SLOW)
    assert onset[0] == 0 and np.all(np.diff(onset) >= 0) and np.all(offset > onset)


def test_tempo_outside_the_model_classes_is_a_warning(midi_path):
    model = constant_tempo_models(n_tempo_classes=20).alignment
    table = read_score(midi_path)
    with pytest.warns(TempoRangeWarning) as caught:
        predict_timing(model, table, performer=0, tempo_qpm=10.0)  # 10 -> 40 qpm
    assert [str(w.message) for w in caught] == [
        "tempo 10 qpm is outside the 30-300 qpm the alignment model was trained for: played at 30 qpm"
    ]
    assert caught[0].filename == __file__  # the warning points at the call, not into the library
    with pytest.warns(TempoRangeWarning) as caught:
        predict_timing(model, table, performer=0, tempo_qpm=100.0)  # 100 -> 400 qpm
    assert [str(w.message) for w in caught] == [
        "tempo 400 qpm is outside the 30-300 qpm the alignment model was trained for: played at 300 qpm"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", TempoRangeWarning)
        predict_timing(model, table, performer=0, tempo_qpm=SLOW)
