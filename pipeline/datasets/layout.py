"""The normalised dataset layout every source writes and every later stage reads.

<root>/manifest.csv          one row per recording (columns: MANIFEST_COLUMNS)
<root>/performers.json       performer name -> integer id (embedding index)
<root>/corpus.json           recordings with audio and annotation-only, in all and per performer
                             (the prepare stage's; :func:`write_corpus_counts`)
<root>/audio/<id>.<ext>      the recording (none for an annotation-only recording: manifest audio "")
<root>/notes/<id>.csv        its score as a NoteTable (ticks, 24 per quarter)
<root>/reference/<id>.csv    reference onset,offset in seconds per note (same order), if known

An **annotation-only** recording (manifest ``audio`` = "") has notes and a reference alignment (a
dataset's human note timing) but no sound: the alignment model learns its timing; nothing that needs
audio (resampling, DTW, the mel, synthesis and vocoder training, audio evaluation) reads it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.io import atomic_path, write_json


@dataclass
class Recording:
    id: str
    piece: str
    performer: str
    performer_id: int
    audio: str  # relative to the dataset root; "" for an annotation-only recording (notes + reference, no sound)
    notes: str
    reference: str  # "" when no reference alignment exists
    tempo_qpm: float  # the tempo the recording was played at, on average (quarters per minute)
    polyphonic: bool
    tuning_cents: float = 0.0  # e.g. -100 for baroque pitch (A=415) with notes left untransposed
    source: str = ""
    program: int = -1  # General MIDI program of the instrument (the alignment's reference); -1: params align.program

    @property
    def has_audio(self) -> bool:
        """False for an annotation-only recording: its timing is the reference, it has no sound."""
        return bool(self.audio)


MANIFEST_COLUMNS = [f.name for f in fields(Recording)]
CORPUS_FILE = "corpus.json"  # beside manifest.csv in the prepare stage's folder


def write_manifest(root: str | Path, recordings: list[Recording]) -> None:
    root = Path(root)
    frame = pd.DataFrame([asdict(r) for r in recordings], columns=MANIFEST_COLUMNS)
    with atomic_path(root / "manifest.csv") as tmp:
        frame.to_csv(tmp, index=False)
    ids: dict[str, int] = {}
    for r in recordings:
        ids.setdefault(r.performer, r.performer_id)
    write_json(root / "performers.json", dict(sorted(ids.items(), key=lambda kv: kv[1])))


def corpus_counts(recordings: list[Recording]) -> dict:
    """Recordings with audio and annotation-only, in all and per performer (sorted by name)."""
    per: dict[str, dict[str, int]] = {}
    for r in recordings:
        counts = per.setdefault(r.performer, {"with_audio": 0, "annotation_only": 0})
        counts["with_audio" if r.has_audio else "annotation_only"] += 1
    return {
        "recordings": len(recordings),
        "with_audio": sum(r.has_audio for r in recordings),
        "annotation_only": sum(not r.has_audio for r in recordings),
        "performers": dict(sorted(per.items())),
    }


def write_corpus_counts(root: str | Path, recordings: list[Recording]) -> dict:
    """Write ``root``/corpus.json (:func:`corpus_counts`) and return it."""
    counts = corpus_counts(recordings)
    write_json(Path(root) / CORPUS_FILE, counts)
    return counts


def describe_counts(counts: dict) -> str:
    """One line: totals, then ``performer audio+annotation-only`` for each performer."""
    per = ", ".join(f"{name} {c['with_audio']}+{c['annotation_only']}" for name, c in counts["performers"].items())
    return (
        f"{counts['with_audio']} with audio, {counts['annotation_only']} annotation-only "
        f"(per performer, with audio+annotation-only: {per})"
    )


def read_manifest(root: str | Path) -> list[Recording]:
    path = Path(root) / "manifest.csv"
    if not path.is_file():
        raise PipelineError("manifest not found (run the previous stage first)", path)
    frame = pd.read_csv(path, keep_default_na=False, dtype={"id": str, "piece": str, "performer": str})
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise PipelineError(f"manifest lacks column(s) {', '.join(missing)}", path)
    out = []
    for row in frame.to_dict("records"):
        row["polyphonic"] = str(row["polyphonic"]).lower() in ("true", "1")
        row["performer_id"] = int(row["performer_id"])
        row["tempo_qpm"] = float(row["tempo_qpm"])
        row["tuning_cents"] = float(row["tuning_cents"] or 0.0)
        row["program"] = int(row["program"]) if str(row["program"]).strip() else -1
        out.append(Recording(**row))
    return out


def read_performers(root: str | Path) -> dict[str, int]:
    """Performer name -> embedding id, from ``root``/performers.json (or ``root`` if it is that file)."""
    path = Path(root)
    if path.suffix != ".json":
        path = path / "performers.json"
    if not path.is_file():
        raise PipelineError("performer table not found", path)
    return json.loads(path.read_text())


def write_reference(path: str | Path, onset: np.ndarray, offset: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame({"onset": np.round(onset, 6), "offset": np.round(offset, 6)}).to_csv(tmp, index=False)


def read_reference(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise PipelineError("reference alignment not found", path)
    frame = pd.read_csv(path)
    if not {"onset", "offset"} <= set(frame.columns):
        raise PipelineError("reference alignment needs columns onset,offset", path)
    return frame["onset"].to_numpy(float), frame["offset"].to_numpy(float)
