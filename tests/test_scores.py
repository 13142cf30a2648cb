import mido
import numpy as np
import pytest

from pipeline.config import TICKS_PER_QUARTER
from pipeline.errors import PipelineError
from pipeline.scores import NoteTable, _finish, read_midi, read_midi_notes, read_score


def write_midi(path, notes, tpq=480, tempo_bpm=90):
    """notes: (onset_beats, duration_beats, pitch, velocity)."""
    mid = mido.MidiFile(ticks_per_beat=tpq)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    events = []
    for on, dur, pitch, vel in notes:
        events.append((round(on * tpq), 1, "note_on", pitch, vel))
        events.append((round((on + dur) * tpq), 0, "note_off", pitch, 0))
    now = 0
    for tick, _, kind, pitch, vel in sorted(events):
        track.append(mido.Message(kind, note=pitch, velocity=vel, time=tick - now))
        now = tick
    mid.save(path)


def test_midi_with_a_chord(tmp_path):
    path = tmp_path / "chord.mid"
    write_midi(path, [(0, 1, 60, 80), (1, 2, 64, 70), (1, 2, 67, 70), (1, 2, 72, 90), (3, 0.5, 62, 64)])
    table = read_score(path)
    assert table.tempo_qpm == pytest.approx(90, rel=1e-3)
    assert table.onset.tolist() == [0, 24, 24, 24, 72]
    assert table.duration.tolist() == [24, 48, 48, 48, 12]
    assert table.pitch.tolist() == [60, 64, 67, 72, 62]
    assert table.velocity.tolist() == [80, 70, 70, 90, 64]
    assert table.is_polyphonic


def make_musicxml_score():
    from music21 import chord, meter, note, stream, tempo, tie

    part = stream.Part()
    measure = stream.Measure(number=1)
    measure.append(meter.TimeSignature("4/4"))
    measure.append(tempo.MetronomeMark(number=72))
    measure.append(note.Note("C4", quarterLength=1))
    measure.append(chord.Chord(["E4", "G4"], quarterLength=1))
    tied = note.Note("A4", quarterLength=2)
    tied.tie = tie.Tie("start")
    measure.append(tied)
    second = stream.Measure(number=2)
    cont = note.Note("A4", quarterLength=1)
    cont.tie = tie.Tie("stop")
    second.append(cont)
    second.append(note.Note("B4", quarterLength=3))
    part.append([measure, second])
    score = stream.Score()
    score.insert(0, part)
    return score


@pytest.mark.parametrize("suffix", [".musicxml", ".mxl"])
def test_musicxml_chord_and_tie(tmp_path, suffix):
    path = tmp_path / f"score{suffix}"
    make_musicxml_score().write("mxl" if suffix == ".mxl" else "musicxml", fp=str(path))
    table = read_score(path)
    assert table.tempo_qpm == pytest.approx(72)
    assert table.onset.tolist() == [0, 24, 24, 48, 120]
    assert table.pitch.tolist() == [60, 64, 67, 69, 71]
    assert table.duration.tolist() == [24, 24, 24, 72, 72]  # the tie is merged into one note of 3 quarters


def test_repeats_are_expanded(tmp_path):
    from music21 import bar, meter, note, stream

    part = stream.Part()
    for number, pitch in ((1, "C4"), (2, "D4")):
        m = stream.Measure(number=number)
        if number == 1:
            m.append(meter.TimeSignature("2/4"))
        m.append(note.Note(pitch, quarterLength=2))
        part.append(m)
    part.measure(2).rightBarline = bar.Repeat(direction="end")
    score = stream.Score([part])
    path = tmp_path / "repeat.musicxml"
    score.write("musicxml", fp=str(path))
    table = read_score(path)
    assert table.pitch.tolist() == [60, 62, 60, 62]
    assert table.onset.tolist() == [0, 48, 96, 144]


def test_the_bach_violin_fixture_score_matches_its_published_notes(repo_root):
    import pandas as pd

    fixture = repo_root / "tests/fixtures/bach-violin-sample"
    table = read_score(fixture / "scores/bwv1006/bwv1006_mov5.mxl")
    published = pd.read_csv(fixture / "notes/emil-telmanyi/emil-telmanyi_bwv1006_mov5.csv")
    assert table.length_ticks == published.offset.max()  # repeats expanded like the dataset's
    ours = set(zip(table.onset, table.offset, table.pitch))
    theirs = set(zip(published.onset, published.offset, published.pitch))
    assert len(ours & theirs) / len(theirs) > 0.98


def test_corrupt_and_empty_scores_fail_with_the_file_name(tmp_path):
    corrupt = tmp_path / "broken.mid"
    corrupt.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(PipelineError, match=r"broken.mid: not a readable MIDI file"):
        read_score(corrupt)
    empty = tmp_path / "empty.mid"
    write_midi(empty, [])
    with pytest.raises(PipelineError, match=r"empty.mid: score holds no notes"):
        read_score(empty)
    with pytest.raises(PipelineError, match="unknown score format"):
        read_score(tmp_path / "x.txt") if (tmp_path / "x.txt").write_text("x") else None


def test_note_table_csv_round_trip(tmp_path):
    table = NoteTable([0, 24], [24, 48], [60, 62], [64, 70], [0, 0], tempo_qpm=88.5)
    table.to_csv(tmp_path / "t.csv")
    back = NoteTable.from_csv(tmp_path / "t.csv")
    assert back.tempo_qpm == 88.5
    np.testing.assert_array_equal(back.offset, [24, 72])


def _muspy_notes(path):
    """The notes as muspy reads them (the reader read_midi replaced, kept as its reference)."""
    import muspy

    music = muspy.read_midi(path)
    music.adjust_resolution(TICKS_PER_QUARTER)
    rows = [
        (n.time, n.duration, n.pitch, n.velocity, i)
        for i, t in enumerate(t for t in music.tracks if not t.is_drum)
        for n in t.notes
    ]
    return rows, float(music.tempos[0].qpm) if music.tempos else None


def _muspy_native(path):
    """(onset, offset, pitch) in the file's own ticks, as muspy reads them, ordered as read_midi's rows."""
    import muspy

    music = muspy.read_midi(path)
    notes = [n for t in music.tracks if not t.is_drum for n in t.notes]
    factor = TICKS_PER_QUARTER / music.resolution
    order = np.lexsort(([n.pitch for n in notes], [round(n.time * factor) for n in notes]))
    return [(notes[i].time, notes[i].time + notes[i].duration, notes[i].pitch) for i in order]


@pytest.mark.parametrize("resolution", [96, 220, 480, 1000])
def test_midi_reader_matches_muspy_note_for_note(tmp_path, resolution):
    """Awkward files: two tracks, several channels and programs, a drum channel, the same key struck
    twice before its note-off (first in, first out), note-on with velocity 0 as note-off, notes left
    sounding at the end of a track, controllers, tempo changes, resolutions that round at .5."""
    import mido
    import muspy

    rng = np.random.default_rng(resolution)
    midi = mido.MidiFile(type=1, ticks_per_beat=resolution)
    for track_no in range(2):
        events = [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90 + 30 * track_no)))]
        for channel in (0, 1, 9):
            events.append((0, mido.Message("program_change", channel=channel, program=int(rng.integers(0, 80)))))
            for _ in range(25):
                start, length = int(rng.integers(0, 8 * resolution)), int(rng.integers(1, 2 * resolution))
                key, vel = int(rng.integers(55, 70)), int(rng.integers(1, 127))
                events.append((start, mido.Message("note_on", channel=channel, note=key, velocity=vel)))
                off = (
                    mido.Message("note_on", channel=channel, note=key, velocity=0)
                    if rng.random() < 0.5
                    else mido.Message("note_off", channel=channel, note=key)
                )
                if rng.random() > 0.1:  # some never end
                    events.append((start + length, off))
            events.append(
                (
                    int(rng.integers(0, 4 * resolution)),
                    mido.Message("control_change", channel=channel, control=64, value=127),
                )
            )
        events.append((3 * resolution, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(150))))
        track, now = mido.MidiTrack(), 0
        for tick, message in sorted(events, key=lambda e: e[0]):  # stable: the order written above
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    path = tmp_path / "awkward.mid"
    midi.save(path)
    table = read_midi(path)
    reference, qpm = _muspy_notes(path)
    expected = _finish(*zip(*reference), qpm, "awkward", path)
    for column in ("onset", "duration", "pitch", "velocity", "track"):
        np.testing.assert_array_equal(getattr(table, column), getattr(expected, column), err_msg=column)
    assert table.tempo_qpm == qpm and abs(qpm - 90.0) < 1e-3  # the first tempo event's
    # the file's own ticks of each row (what MAESTRO's exact times are computed from), and its tempo events
    native = read_midi_notes(path)
    assert list(zip(native.onset.tolist(), native.offset.tolist(), native.table.pitch.tolist())) == _muspy_native(path)
    assert native.ticks_per_beat == resolution and native.table.pitch.tolist() == table.pitch.tolist()
    assert native.tempos == [(t.time, t.qpm) for t in muspy.read_midi(path).tempos] and len(native.tempos) == 4
    assert set(table.track) == {0, 1, 2, 3}  # drums left out: two tracks x two melodic channels
