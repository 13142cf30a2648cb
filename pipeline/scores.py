"""Scores as note tables: MIDI (mido, :func:`read_midi`) and MusicXML / .mxl (music21) in one type.

Times are in ticks at 24 per quarter note (the paper's resolution). Ties are merged
and repeats expanded, so a table lists the notes in the order they are played.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.config import TICKS_PER_QUARTER
from pipeline.errors import PipelineError
from pipeline.io import atomic_path

if TYPE_CHECKING:  # pandas costs 0.3 s to import: `performer render` reads no note table
    import pandas as pd

DEFAULT_TEMPO_QPM = 100.0
DEFAULT_MIDI_QPM = 120.0  # MIDI's tempo until the first set_tempo (500000 us per quarter)
MIDI_SUFFIXES = {".mid", ".midi"}
MUSICXML_SUFFIXES = {".xml", ".musicxml", ".mxl"}
NOTE_COLUMNS = ["onset", "duration", "pitch", "velocity", "track"]


@dataclass
class NoteTable:
    """Notes of one score, sorted by (onset, pitch). All arrays have one entry per note.

    onset, duration: int ticks (``resolution`` per quarter note); pitch: MIDI number;
    velocity: 1-127; track: part index (voice/instrument) in the source score.

    tempo_qpm: the score's **opening** tempo (its first tempo marking), quarter notes per minute; what
    it meant before tempo maps existed, so every user of one tempo (the built-in corpus's excerpt
    length, the datasets' fallbacks) reads the same value.
    tempo_changes: the tempo map when the tempo changes, else None (constant ``tempo_qpm``): a
    ``(k, 2)`` float array of ``(tick, qpm)`` rows, ticks strictly increasing, the first at tick 0,
    each tempo holding until the next row's tick (every ``set_tempo`` of a MIDI file, every
    MetronomeMark of a MusicXML score). Given to the constructor, it sets ``tempo_qpm`` (its first
    row's tempo); assigning ``tempo_qpm`` later scales the whole map to open at the new tempo
    (:meth:`tempo_map`). A map of one tempo is stored as None, so one-tempo tables (and their CSV
    files) are exactly what they were before tempo maps.
    """

    onset: np.ndarray
    duration: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    track: np.ndarray
    tempo_qpm: float = DEFAULT_TEMPO_QPM
    resolution: int = TICKS_PER_QUARTER
    name: str = ""
    extra: dict = field(default_factory=dict)
    tempo_changes: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.onset)
        self.onset = np.asarray(self.onset, dtype=np.int64)
        self.duration = np.asarray(self.duration, dtype=np.int64)
        self.pitch = np.asarray(self.pitch, dtype=np.int64)
        self.velocity = np.asarray(self.velocity, dtype=np.int64)
        self.track = np.asarray(self.track, dtype=np.int64)
        if not all(len(a) == n for a in (self.duration, self.pitch, self.velocity, self.track)):
            raise ValueError("note arrays must have equal length")
        if self.tempo_changes is not None:
            changes = tempo_map_rows(self.tempo_changes)
            self.tempo_qpm = float(changes[0, 1])
            self.tempo_changes = changes if len(changes) > 1 else None

    def __len__(self) -> int:
        return len(self.onset)

    @property
    def offset(self) -> np.ndarray:
        return self.onset + self.duration

    @property
    def length_ticks(self) -> int:
        return int(self.offset.max()) if len(self) else 0

    @property
    def is_polyphonic(self) -> bool:
        """True when some note starts before the previous one has ended (chords, voices)."""
        if len(self) < 2:
            return False
        return bool(np.any(self.onset[1:] < np.maximum.accumulate(self.offset)[:-1]))

    def tempo_map(self, tempo_qpm: float | None = None) -> np.ndarray:
        """``(k, 2)`` rows ``(tick, qpm)``, the first at tick 0 (one row when the tempo never changes).

        ``tempo_qpm`` (default: :attr:`tempo_qpm`) is the opening tempo: the map is scaled by
        ``tempo_qpm / first tempo``, so the changes keep their proportions (``--tempo 120`` on a
        60 -> 240 qpm score plays 120 -> 480)."""
        opening = self.tempo_qpm if tempo_qpm is None else float(tempo_qpm)
        if not (np.isfinite(opening) and opening > 0):
            raise ValueError(f"tempo must be a positive number of quarter notes per minute, not {opening:g}")
        if self.tempo_changes is None:
            return np.array([[0.0, opening]])
        out = np.array(self.tempo_changes, dtype=np.float64)
        if opening != out[0, 1]:
            out[:, 1] *= opening / out[0, 1]
            out[0, 1] = opening
        return out

    def tempo_at(self, ticks: np.ndarray | int, tempo_qpm: float | None = None) -> np.ndarray:
        """The tempo (qpm) in force at each of ``ticks`` (the map's, opening at ``tempo_qpm``)."""
        tempo_map = self.tempo_map(tempo_qpm)
        row = np.searchsorted(tempo_map[:, 0], np.asarray(ticks, dtype=np.float64), side="right") - 1
        return tempo_map[np.maximum(row, 0), 1]

    def time_at(self, ticks: np.ndarray | int, tempo_qpm: float | None = None) -> np.ndarray:
        """Seconds from tick 0 to each of ``ticks`` (ints or floats) along the tempo map (see
        :meth:`tempo_map` for ``tempo_qpm``). At one tempo: exactly ``ticks * 60 / (qpm * resolution)``."""
        tempo_map = self.tempo_map(tempo_qpm)
        start, sec_per_tick = tempo_map[:, 0], 60.0 / (tempo_map[:, 1] * self.resolution)
        at_start = np.concatenate([[0.0], np.cumsum(np.diff(start) * sec_per_tick[:-1])])
        ticks = np.asarray(ticks)
        if len(tempo_map) == 1:
            return ticks * sec_per_tick[0]
        row = np.maximum(np.searchsorted(start, ticks, side="right") - 1, 0)
        return at_start[row] + (ticks - start[row]) * sec_per_tick[row]

    def seconds(self, tempo_qpm: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Onset and offset in seconds along the tempo map (:meth:`time_at`). An explicit ``tempo_qpm``
        sets the opening tempo and scales the whole map by ``tempo_qpm / first tempo`` (the changes
        are kept); at one tempo that is the plain constant tempo."""
        return self.time_at(self.onset, tempo_qpm), self.time_at(self.offset, tempo_qpm)

    def sorted(self) -> NoteTable:
        order = np.lexsort((self.pitch, self.onset))
        return self.subset(order)

    def subset(self, index: np.ndarray) -> NoteTable:
        return NoteTable(
            self.onset[index],
            self.duration[index],
            self.pitch[index],
            self.velocity[index],
            self.track[index],
            self.tempo_qpm,
            self.resolution,
            self.name,
            dict(self.extra),
            None if self.tempo_changes is None else self.tempo_map(),
        )

    def truncate(self, max_ticks: int) -> NoteTable:
        """Notes starting before ``max_ticks``, cut to end there."""
        keep = self.onset < max_ticks
        out = self.subset(np.flatnonzero(keep))
        out.duration = np.minimum(out.duration, max_ticks - out.onset)
        if out.tempo_changes is not None:  # changes at or after the cut play no note
            kept = out.tempo_changes[out.tempo_changes[:, 0] < max(max_ticks, 1)]
            out.tempo_changes = kept if len(kept) > 1 else None
        return out

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({c: getattr(self, c) for c in NOTE_COLUMNS})

    def to_csv(self, path: str | Path) -> None:
        """Write ``onset,duration,pitch,velocity,track`` with a header comment holding the tempo:
        ``# tempo_qpm=60 resolution=24``, plus ``tempo_map=0:60;96:240`` (``tick:qpm`` rows, the
        tempo in full precision) when the tempo changes."""
        buf = io.StringIO()
        header = f"# tempo_qpm={self.tempo_qpm:.6g} resolution={self.resolution}"
        if self.tempo_changes is not None:
            header += " tempo_map=" + ";".join(f"{int(t)}:{_number(q)}" for t, q in self.tempo_map())
        buf.write(header + "\n")
        self.to_frame().to_csv(buf, index=False)
        with atomic_path(path) as tmp:
            tmp.write_text(buf.getvalue())

    @classmethod
    def from_csv(cls, path: str | Path) -> NoteTable:
        path = Path(path)
        if not path.is_file():
            raise PipelineError("note table not found", path)
        meta: dict[str, float] = {}
        tempo_changes = None
        with path.open() as fh:
            first = fh.readline()
        if first.startswith("#"):
            try:
                for item in first[1:].split():
                    key, _, value = item.partition("=")
                    if key == "tempo_map":
                        rows = [row.split(":") for row in value.split(";")]
                        tempo_changes = tempo_map_rows(np.array(rows, dtype=np.float64))
                    else:
                        meta[key] = float(value)
            except ValueError as err:
                raise PipelineError(f"unreadable header line {first.strip()!r} ({err})", path) from err
        import pandas as pd

        frame = pd.read_csv(path, comment="#")
        missing = [c for c in NOTE_COLUMNS if c not in frame.columns]
        if missing:
            raise PipelineError(f"note table lacks column(s) {', '.join(missing)}", path)
        onset, duration, pitch, velocity, track = (frame[c].to_numpy() for c in NOTE_COLUMNS)
        return cls(
            onset,
            duration,
            pitch,
            velocity,
            track,
            tempo_qpm=meta.get("tempo_qpm", DEFAULT_TEMPO_QPM),
            resolution=int(meta.get("resolution", TICKS_PER_QUARTER)),
            name=path.stem,
            tempo_changes=tempo_changes,
        )


def _number(value: float) -> str:
    """Shortest text that reads back as exactly ``value`` (``60``, ``130.0000520000208``)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def tempo_map_rows(rows) -> np.ndarray:
    """A valid tempo map from ``(tick, qpm)`` rows in any order: sorted by tick (stable), integer
    ticks, the first row's tempo holding from tick 0, the first row of a tick kept when several share
    it (a file's first tempo event, as the MIDI reader always did), rows that repeat the tempo in force
    dropped. Raises ValueError for a tempo that is not positive and finite, or no rows."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
    if len(rows) == 0:
        raise ValueError("a tempo map needs at least one (tick, qpm) row")
    if not (np.isfinite(rows).all() and np.all(rows[:, 1] > 0) and np.all(rows[:, 0] >= 0)):
        raise ValueError("a tempo map's ticks must be >= 0 and its tempi positive and finite")
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    rows[:, 0] = np.round(rows[:, 0])
    rows[0, 0] = 0.0
    rows = rows[np.r_[True, rows[1:, 0] != rows[:-1, 0]]]  # the first row of each tick
    return rows[np.r_[True, rows[1:, 1] != rows[:-1, 1]]]  # the rows that change the tempo


def _finish(onset, duration, pitch, velocity, track, tempo, name, path, tempo_changes=None) -> NoteTable:
    table = NoteTable(onset, duration, pitch, velocity, track, tempo_qpm=tempo, name=name, tempo_changes=tempo_changes)
    if len(table) == 0:
        raise PipelineError("score holds no notes", path)
    table.duration = np.maximum(table.duration, 1)
    return table.sorted()


def notes_from_music21(score, name: str = "", path: str | Path | None = None) -> NoteTable:
    """Note table of a music21 Score/Part: repeats expanded, ties merged, chords split."""
    from music21 import repeat, stream, tempo  # local: music21 is slow to import

    work = score
    try:
        if work.recurse().getElementsByClass((repeat.RepeatMark, repeat.RepeatExpression)):
            work = work.expandRepeats()
    except Exception:  # noqa: BLE001  (music21 raises a zoo of errors on inconsistent repeat marks)
        work = score
    parts = list(work.parts) if isinstance(work, stream.Score) and work.parts else [work]
    onset, duration, pitch, velocity, track = [], [], [], [], []
    for index, part in enumerate(parts):
        flat = part.flatten().stripTies()
        for element in flat.notes:
            start = round(float(element.offset) * TICKS_PER_QUARTER)
            length = round(float(element.quarterLength) * TICKS_PER_QUARTER)
            if length <= 0:  # grace notes have no written duration
                continue
            vel = element.volume.velocity if element.volume.velocity is not None else 64
            for p in getattr(element, "pitches", ()):
                onset.append(start)
                duration.append(length)
                pitch.append(p.midi)
                velocity.append(int(vel))
                track.append(index)
    changes = []  # every metronome mark with a tempo, in score order (each part may repeat them)
    for mark in work.flatten().getElementsByClass(tempo.MetronomeMark):
        value = mark.getQuarterBPM()
        if value and value > 0:
            changes.append((round(float(mark.offset) * TICKS_PER_QUARTER), float(value)))
    tempo_map = tempo_map_rows(changes) if changes else None
    qpm = float(tempo_map[0, 1]) if tempo_map is not None else DEFAULT_TEMPO_QPM
    return _finish(onset, duration, pitch, velocity, track, qpm, name, path, tempo_map)


@dataclass
class MidiNotes:
    """The notes of a MIDI file at the file's own resolution, in the rows of their :class:`NoteTable`
    (``table``, the notes at ``TICKS_PER_QUARTER``: :func:`read_midi`'s result), so that the exact times of
    each row can be computed: ``onset`` and ``offset`` in MIDI ticks (``ticks_per_beat`` per quarter),
    ``tempos`` every ``set_tempo`` of the file as ``(MIDI tick, qpm)``, track after track, in file order."""

    table: NoteTable
    onset: np.ndarray
    offset: np.ndarray
    ticks_per_beat: int
    tempos: list[tuple[int, float]]


def read_midi(path: str | Path) -> NoteTable:
    """The notes of a type-0/1 MIDI file (drum channel left out) in ``TICKS_PER_QUARTER`` ticks
    (:func:`read_midi_notes`, which also keeps the file's own ticks)."""
    return read_midi_notes(path).table


def read_midi_notes(path: str | Path) -> MidiNotes:
    """The notes of a type-0/1 MIDI file (drum channel left out): their table in ``TICKS_PER_QUARTER``
    ticks and their ticks in the file (:class:`MidiNotes`). The project's one MIDI reader (`performer
    render`, the corpora, MAESTRO), on mido.

    The semantics are muspy's MIDI reader's, note for note (tested against it): a note is closed by
    the first note-off of its key and channel (first in, first out), notes still sounding at the end of
    a track end there, one track per (MIDI track, program, channel) in the order they are first used,
    the first tempo event's tempo (``tempo_qpm``), each time rounded to the grid with Python's
    ``round`` (muspy's ``adjust_resolution``). Beyond muspy: the tempo map (``tempo_changes``) of every
    ``set_tempo`` of every track, at the note grid's ticks; the first tempo holds from tick 0, and
    where several events share a tick the first (in track order) counts.
    """
    import mido

    path = Path(path)
    try:
        midi = mido.MidiFile(filename=str(path))
        if midi.type == 2:
            raise ValueError("type 2 (asynchronous) MIDI files are not supported")
        if midi.ticks_per_beat < 1:
            raise ValueError(f"ticks per beat must be positive, not {midi.ticks_per_beat}")
    except Exception as err:  # mido raises OSError, EOFError, KeyError, ValueError...
        raise PipelineError(f"not a readable MIDI file ({type(err).__name__}: {err})", path) from err
    tempos: list[tuple[int, float]] = []  # (MIDI tick, qpm) of every tempo event, track after track
    tracks: list[tuple[bool, list[tuple[int, int, int, int]]]] = []  # (drum, [(onset, pitch, duration, velocity)])
    for midi_track in midi.tracks:
        now, programs = 0, [0] * 16
        sounding: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(
            list
        )  # (channel, key) -> [(onset, velocity)]
        parts: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}  # (program, channel) -> notes

        def part(channel: int, parts=parts, programs=programs) -> list[tuple[int, int, int, int]]:
            return parts.setdefault((programs[channel], channel), [])

        for msg in midi_track:
            now += msg.time
            kind = msg.type
            if kind == "set_tempo":
                if msg.tempo > 0:
                    tempos.append((now, float(mido.tempo2bpm(msg.tempo))))
            elif kind == "program_change":
                programs[msg.channel] = msg.program
            elif kind == "note_on" and msg.velocity > 0:
                sounding[(msg.channel, msg.note)].append((now, msg.velocity))
            elif kind == "note_off" or kind == "note_on":  # note_on with velocity 0 ends a note
                started = sounding[(msg.channel, msg.note)]
                if started:
                    note_onset, note_velocity = started.pop(0)
                    part(msg.channel).append((note_onset, msg.note, now - note_onset, note_velocity))
            elif kind == "control_change":
                part(msg.channel)  # a controller opens its part (muspy keeps the event; the track order follows)
            elif kind == "end_of_track":
                break
        for (channel, key), started in sounding.items():
            notes = part(channel)
            notes.extend((onset, key, now - onset, velocity) for onset, velocity in started)
        tracks.extend((channel == 9, sorted(notes)) for (_, channel), notes in parts.items())
    rows = [
        (start, length, key, vel, index)
        for index, (_, notes) in enumerate(t for t in tracks if not t[0])
        for start, key, length, vel in notes
    ]
    columns = [np.array(column, dtype=np.int64) for column in zip(*rows)] if rows else [np.zeros(0, np.int64)] * 5
    start, length, pitch, velocity, track = columns
    scale = TICKS_PER_QUARTER / midi.ticks_per_beat
    onset = np.array([round(tick * scale) for tick in start.tolist()], dtype=np.int64)
    end = np.array([round(tick * scale) for tick in (start + length).tolist()], dtype=np.int64)
    order = np.lexsort((pitch, onset))  # NoteTable.sorted()'s order, which _finish keeps (a stable sort of sorted rows)
    tempo_map = tempo_map_rows([(round(tick * scale), qpm) for tick, qpm in tempos]) if tempos else None
    qpm = float(tempo_map[0, 1]) if tempo_map is not None else DEFAULT_TEMPO_QPM
    table = _finish(
        onset[order], (end - onset)[order], pitch[order], velocity[order], track[order], qpm, path.stem, path, tempo_map
    )
    return MidiNotes(table, start[order], (start + length)[order], int(midi.ticks_per_beat), tempos)


def tick_seconds(ticks: np.ndarray, tempos: list[tuple[int, float]], resolution: int) -> np.ndarray:
    """Seconds of MIDI ``ticks`` under a file's tempo events ``(MIDI tick, qpm)`` (in file order; MIDI's
    120 qpm until the first; where several share a tick, the last in file order holds)."""
    times: list[int] = [0]
    qpms: list[float] = [DEFAULT_MIDI_QPM]
    for tick, qpm in sorted(tempos, key=lambda t: t[0]):  # stable: the last change at a tick wins
        if int(tick) == times[-1]:
            qpms[-1] = float(qpm)
        else:
            times.append(int(tick))
            qpms.append(float(qpm))
    change = np.asarray(times, dtype=np.int64)
    sec_per_tick = 60.0 / (np.asarray(qpms) * resolution)
    at_change = np.concatenate([[0.0], np.cumsum(np.diff(change) * sec_per_tick[:-1])])
    ticks = np.asarray(ticks, dtype=np.int64)
    index = np.searchsorted(change, ticks, side="right") - 1
    return at_change[index] + (ticks - change[index]) * sec_per_tick[index]


def midi_notes_and_times(path: str | Path) -> tuple[NoteTable, np.ndarray, np.ndarray]:
    """The NoteTable of ``read_midi`` and each note's onset/offset in seconds (same rows), from the
    file's own ticks (:func:`pipeline.scores.read_midi_notes`): exact, not the 24-tick grid's."""
    midi = read_midi_notes(path)
    onset = tick_seconds(midi.onset, midi.tempos, midi.ticks_per_beat)
    offset = tick_seconds(midi.offset, midi.tempos, midi.ticks_per_beat)
    return midi.table, onset, offset


PERFORMANCE_TICKS_PER_BEAT = 960  # at MIDI's default 120 qpm one tick is 0.52 ms: times round-trip within 0.26 ms


def write_performance_midi(
    path: str | Path,
    pitch: np.ndarray,
    onset: np.ndarray,
    offset: np.ndarray,
    velocity: np.ndarray,
    *,
    performer: str,
    program: int = 0,
    title: str = "",
) -> None:
    """A performance as a type-0 MIDI file that any synthesizer or DAW plays: every note at its performed
    ``onset``/``offset`` (seconds) with its ``velocity``, on one channel with General MIDI ``program``; the
    performer in the track name and a ``performer=NAME`` text event (``title``, if given, as a marker).

    The clock is MIDI's default 120 qpm at :data:`PERFORMANCE_TICKS_PER_BEAT` (written as a tempo event
    too), so :func:`midi_notes_and_times` reads every time back within 0.26 ms. A note that would still
    sound when the same key starts again ends there (MIDI has one voice per key and channel); each
    note keeps at least one tick. Written whole or not at all.
    """
    import mido

    pitch = np.asarray(pitch, dtype=np.int64)
    onset, offset = np.asarray(onset, dtype=float), np.asarray(offset, dtype=float)
    velocity = np.asarray(velocity, dtype=np.int64)
    if not (len(pitch) == len(onset) == len(offset) == len(velocity)):
        raise PipelineError("a performance needs one pitch, onset, offset and velocity per note", path)
    if len(pitch) and (not np.isfinite(onset).all() or not np.isfinite(offset).all() or onset.min() < 0):
        raise PipelineError("a performance's note times must be finite and >= 0", path)
    tick = 60.0 / (DEFAULT_MIDI_QPM * PERFORMANCE_TICKS_PER_BEAT)
    start = np.rint(onset / tick).astype(np.int64)
    end = np.maximum(np.rint(offset / tick).astype(np.int64), start + 1)
    order = np.lexsort((pitch, start))
    next_start: dict[int, int] = {}  # key -> the onset tick of its next note (walking backwards)
    for i in order[::-1]:
        later = next_start.get(int(pitch[i]))
        if later is not None and later > start[i]:
            end[i] = min(end[i], later)
        next_start[int(pitch[i])] = int(start[i])
    events = [(int(end[i]), 0, int(pitch[i]), 0) for i in order]  # note-offs sort first at a tick
    events += [(int(start[i]), 1, int(pitch[i]), int(np.clip(velocity[i], 1, 127))) for i in order]
    events.sort()
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=performer, time=0))
    track.append(mido.MetaMessage("text", text=f"performer={performer}", time=0))
    if title:
        track.append(mido.MetaMessage("marker", text=title, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(DEFAULT_MIDI_QPM), time=0))
    track.append(mido.Message("program_change", program=int(program) & 127, channel=0, time=0))
    now = 0
    for at, is_on, key, vel in events:
        kind = "note_on" if is_on else "note_off"
        track.append(mido.Message(kind, note=int(key), velocity=vel, channel=0, time=at - now))
        now = at
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=0, ticks_per_beat=PERFORMANCE_TICKS_PER_BEAT)
    midi.tracks.append(track)
    with atomic_path(path) as tmp:
        midi.save(filename=str(tmp))


def performance_midi_performer(path: str | Path) -> str | None:
    """The performer a :func:`write_performance_midi` file names (its ``performer=`` text), or None."""
    import mido

    for msg in mido.MidiFile(filename=str(path)).tracks[0]:
        if msg.type == "text" and msg.text.startswith("performer="):
            return str(msg.text[len("performer=") :])
    return None


def write_note_timing(path: str | Path, notes: NoteTable, onset: np.ndarray, offset: np.ndarray) -> None:
    """Each note's performed ``onset``/``offset`` (seconds; rows of ``notes``) as CSV, with what lines it
    up with the score: ``note_id`` (its row in the score's note table, sorted by onset then pitch),
    ``pitch``, ``score_onset_beats`` and ``score_duration_beats`` (quarter notes from the score's start).
    The ``onset,offset`` columns are the reference-alignment format (pipeline.datasets.layout)."""
    import csv

    if not (len(notes) == len(onset) == len(offset)):
        raise PipelineError(f"{len(onset)} timed notes for a score of {len(notes)} notes", path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["note_id", "pitch", "score_onset_beats", "score_duration_beats", "onset", "offset"])
        for i in range(len(notes)):
            out.writerow(
                [
                    i,
                    int(notes.pitch[i]),
                    _number(round(float(notes.onset[i]) / notes.resolution, 6)),
                    _number(round(float(notes.duration[i]) / notes.resolution, 6)),
                    _number(round(float(onset[i]), 6)),
                    _number(round(float(offset[i]), 6)),
                ]
            )


def read_musicxml(path: str | Path) -> NoteTable:
    from music21 import converter

    path = Path(path)
    try:
        score = converter.parse(str(path), format="musicxml")
    except Exception as err:  # music21 raises many exception types on malformed files
        raise PipelineError(f"not a readable MusicXML file ({type(err).__name__}: {err})", path) from err
    return notes_from_music21(score, name=path.stem, path=path)


def read_score(path: str | Path) -> NoteTable:
    """Read a MIDI (.mid/.midi) or MusicXML (.xml/.musicxml/.mxl) file into a NoteTable."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError("score file not found", path)
    suffix = path.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return read_midi(path)
    if suffix in MUSICXML_SUFFIXES:
        return read_musicxml(path)
    raise PipelineError(f"unknown score format {suffix!r} (expected .mid, .midi, .xml, .musicxml or .mxl)", path)
