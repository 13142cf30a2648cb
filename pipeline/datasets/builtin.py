"""The built-in corpus: music21 scores played by the virtual performers and rendered with FluidSynth.

Solo-violin material comes from the violin I parts of string quartets (chords reduced to their
top note, so it is monophonic); polyphonic material from four-voice Bach chorales. Every
performer plays every excerpt. Deterministic for a seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.audio import write_audio
from pipeline.config import BuiltinConfig
from pipeline.datasets.layout import Recording, write_manifest, write_reference
from pipeline.errors import PipelineError
from pipeline.performers import get_performer
from pipeline.rendering import render
from pipeline.scores import NoteTable, notes_from_music21

# (music21 corpus path, tempo in quarters per minute when the score has no metronome mark)
VIOLIN_PIECES = (
    ("haydn/opus74no1/movement1", 112.0),
    ("mozart/k156/movement1", 126.0),
    ("haydn/opus1no1/movement1", 104.0),
    ("mozart/k80/movement1", 66.0),
    ("mozart/k458/movement1", 120.0),
    ("beethoven/opus18no1/movement2", 60.0),
    ("mozart/k155/movement2", 76.0),
)
CHORALES = (
    ("bach/bwv66.6", 76.0),
    ("bach/bwv269", 80.0),
    ("bach/bwv347", 72.0),
    ("bach/bwv153.1", 76.0),
    ("bach/bwv26.6", 80.0),
)


def top_line(notes: NoteTable) -> NoteTable:
    """Keep the highest note of each onset and stop every note at the next onset (a single line)."""
    order = np.lexsort((-notes.pitch, notes.onset))
    table = notes.subset(order)
    first = np.r_[True, table.onset[1:] != table.onset[:-1]]
    line = table.subset(np.flatnonzero(first))
    next_onset = np.r_[line.onset[1:], np.iinfo(np.int64).max]
    line.duration = np.minimum(line.duration, next_onset - line.onset)
    return line


def excerpt(notes: NoteTable, max_seconds: float) -> NoteTable:
    """Notes of the first ``max_seconds`` (at the score tempo), ending on a note boundary."""
    limit = int(max_seconds * notes.tempo_qpm / 60.0 * notes.resolution)
    later = notes.onset[notes.onset >= limit]
    return notes.truncate(int(later.min())) if len(later) else notes


def load_piece(path: str, tempo: float, monophonic: bool) -> NoteTable:
    from music21 import corpus

    score = corpus.parse(path)
    if monophonic:
        score = score.parts[0]
    notes = notes_from_music21(score, name=path.replace("/", "_"))
    if not any(True for _ in score.recurse().getElementsByClass("MetronomeMark")):
        notes.tempo_qpm = tempo
    return top_line(notes) if monophonic else notes


def pieces(config: BuiltinConfig) -> list[tuple[str, float, bool]]:
    if config.violin_pieces > len(VIOLIN_PIECES) or config.chorale_pieces > len(CHORALES):
        raise PipelineError(
            f"data.builtin asks for {config.violin_pieces} violin pieces and {config.chorale_pieces} chorales; "
            f"the corpus has {len(VIOLIN_PIECES)} and {len(CHORALES)}"
        )
    return [(p, t, True) for p, t in VIOLIN_PIECES[: config.violin_pieces]] + [
        (p, t, False) for p, t in CHORALES[: config.chorale_pieces]
    ]


def prepare_builtin(config: BuiltinConfig, out: Path, seed: int = 0) -> list[Recording]:
    """Render the corpus into ``out`` in the normalised layout; returns its manifest rows."""
    performers = [get_performer(name) for name in config.performers]
    if not performers:
        raise PipelineError("data.builtin.performers is empty")
    for sub in ("audio", "notes", "reference"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    recordings = []
    plan = pieces(config)
    with tqdm(total=len(plan) * len(performers), desc="render builtin corpus", unit="rec") as bar:
        for path, tempo, mono in plan:
            notes = excerpt(load_piece(path, tempo, mono), config.max_seconds)
            piece = notes.name
            for performer_id, performer in enumerate(performers):
                rec_id = f"{piece}__{performer.name}"
                perf = performer.perform(notes, seed=seed)
                audio = render(perf, performer.instrument, config.sample_rate)
                write_audio(out / "audio" / f"{rec_id}.flac", audio, config.sample_rate, subtype="PCM_16")
                notes.to_csv(out / "notes" / f"{rec_id}.csv")
                write_reference(out / "reference" / f"{rec_id}.csv", perf.onset, perf.offset)
                span = max(float(perf.onset.max() - perf.onset.min()), 1e-3)
                beats = (notes.onset.max() - notes.onset.min()) / notes.resolution
                recordings.append(
                    Recording(
                        id=rec_id,
                        piece=piece,
                        performer=performer.name,
                        performer_id=performer_id,
                        audio=f"audio/{rec_id}.flac",
                        notes=f"notes/{rec_id}.csv",
                        reference=f"reference/{rec_id}.csv",
                        tempo_qpm=round(60.0 * beats / span, 3) if beats > 0 else notes.tempo_qpm,
                        polyphonic=notes.is_polyphonic,
                        source="builtin",
                    )
                )
                bar.update()
    write_manifest(out, recordings)
    return recordings
