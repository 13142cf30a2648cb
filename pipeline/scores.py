"""Scores as note tables: MIDI (muspy) and MusicXML / .mxl (music21) in one type.

Times are in ticks at 24 per quarter note (the paper's resolution). Ties are merged
and repeats expanded, so a table lists the notes in the order they are played.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import TICKS_PER_QUARTER
from pipeline.errors import PipelineError
from pipeline.io import atomic_path

DEFAULT_TEMPO_QPM = 100.0
MIDI_SUFFIXES = {".mid", ".midi"}
MUSICXML_SUFFIXES = {".xml", ".musicxml", ".mxl"}
NOTE_COLUMNS = ["onset", "duration", "pitch", "velocity", "track"]


@dataclass
class NoteTable:
    """Notes of one score, sorted by (onset, pitch). All arrays have one entry per note.

    onset, duration: int ticks (``resolution`` per quarter note); pitch: MIDI number;
    velocity: 1-127; track: part index (voice/instrument) in the source score.
    tempo_qpm: the score's (first) tempo marking, quarter notes per minute.
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

    def __post_init__(self) -> None:
        n = len(self.onset)
        self.onset = np.asarray(self.onset, dtype=np.int64)
        self.duration = np.asarray(self.duration, dtype=np.int64)
        self.pitch = np.asarray(self.pitch, dtype=np.int64)
        self.velocity = np.asarray(self.velocity, dtype=np.int64)
        self.track = np.asarray(self.track, dtype=np.int64)
        if not all(len(a) == n for a in (self.duration, self.pitch, self.velocity, self.track)):
            raise ValueError("note arrays must have equal length")

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

    def seconds(self, tempo_qpm: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Onset and offset in seconds at a constant tempo (the score's own by default)."""
        sec_per_tick = 60.0 / ((tempo_qpm or self.tempo_qpm) * self.resolution)
        return self.onset * sec_per_tick, self.offset * sec_per_tick

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
        )

    def truncate(self, max_ticks: int) -> NoteTable:
        """Notes starting before ``max_ticks``, cut to end there."""
        keep = self.onset < max_ticks
        out = self.subset(np.flatnonzero(keep))
        out.duration = np.minimum(out.duration, max_ticks - out.onset)
        return out

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({c: getattr(self, c) for c in NOTE_COLUMNS})

    def to_csv(self, path: str | Path) -> None:
        """Write ``onset,duration,pitch,velocity,track`` with a header comment holding the tempo."""
        buf = io.StringIO()
        buf.write(f"# tempo_qpm={self.tempo_qpm:.6g} resolution={self.resolution}\n")
        self.to_frame().to_csv(buf, index=False)
        with atomic_path(path) as tmp:
            tmp.write_text(buf.getvalue())

    @classmethod
    def from_csv(cls, path: str | Path) -> NoteTable:
        path = Path(path)
        if not path.is_file():
            raise PipelineError("note table not found", path)
        meta: dict[str, float] = {}
        with path.open() as fh:
            first = fh.readline()
        if first.startswith("#"):
            for item in first[1:].split():
                key, _, value = item.partition("=")
                meta[key] = float(value)
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
        )


def _finish(onset, duration, pitch, velocity, track, tempo, name, path) -> NoteTable:
    table = NoteTable(onset, duration, pitch, velocity, track, tempo_qpm=tempo, name=name)
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
    marks = work.flatten().getElementsByClass(tempo.MetronomeMark)
    qpm = DEFAULT_TEMPO_QPM
    for mark in marks:
        value = mark.getQuarterBPM()
        if value:
            qpm = float(value)
            break
    return _finish(onset, duration, pitch, velocity, track, qpm, name, path)


def read_midi(path: str | Path) -> NoteTable:
    """The notes of a type-0/1 MIDI file (drum channel left out) in ``TICKS_PER_QUARTER`` ticks.

    Read with mido directly: what muspy's MIDI reader does, note for note (tested against it), without
    importing muspy, which costs 2-3 s of every `performer render` (it imports torch and its dataset
    machinery). The semantics are muspy's: a note is closed by the first note-off of its key and
    channel (first in, first out), notes still sounding at the end of a track end there, one track per
    (MIDI track, program, channel) in the order they are first used, the first tempo event's tempo.
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
    tempos: list[float] = []
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
                tempos.append(float(mido.tempo2bpm(msg.tempo)))
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
    scale = TICKS_PER_QUARTER / midi.ticks_per_beat
    onset, duration, pitch, velocity, track = [], [], [], [], []
    for index, (_, notes) in enumerate(t for t in tracks if not t[0]):
        for start, key, length, vel in notes:
            begin = round(start * scale)  # Python's rounding, as muspy's adjust_resolution
            onset.append(begin)
            duration.append(round((start + length) * scale) - begin)
            pitch.append(key)
            velocity.append(vel)
            track.append(index)
    qpm = tempos[0] if tempos else DEFAULT_TEMPO_QPM
    return _finish(onset, duration, pitch, velocity, track, qpm, path.stem, path)


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
