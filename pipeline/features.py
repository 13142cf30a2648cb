"""Per-recording training features: the log-mel plus the notes in both score and frame time.

One ``.npz`` per recording (the format later stages and outside users rely on; see docs/data-formats.md):

    mel            float32 (n_mels, frames)   log-mel, pipeline.mel recipe (absent: annotation-only recording)
    pitch          int16   (notes,)           MIDI pitch, notes in score order (onset, pitch)
    velocity       int16   (notes,)
    score_onset    int32   (notes,)           ticks, 24 per quarter note
    score_duration int32   (notes,)           ticks
    onset_frame    int32   (notes,)           first mel frame of the performed note
    offset_frame   int32   (notes,)           one past its last frame (> onset_frame)
    performer_id   int16   ()                 index into performers.json

An annotation-only recording (no audio; its timing is a dataset's reference alignment) has every key
but ``mel``; its ``frames`` (the mel stage's index.csv) is the frame count its timing spans.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.io import write_npz
from pipeline.scores import NoteTable

FEATURE_KEYS = (
    "mel",
    "pitch",
    "velocity",
    "score_onset",
    "score_duration",
    "onset_frame",
    "offset_frame",
    "performer_id",
)
NOTE_FEATURE_KEYS = FEATURE_KEYS[1:]  # every key but the mel: what an annotation-only recording has


def note_features(notes: NoteTable, alignment: pd.DataFrame, frames: int, performer_id: int) -> dict[str, np.ndarray]:
    """Frame-level note data for ``frames`` mel frames from a note table and its alignment."""
    if len(alignment) != len(notes):
        raise PipelineError(f"alignment has {len(alignment)} rows but the score {notes.name!r} has {len(notes)} notes")
    onset = np.clip(alignment["onset_frame"].to_numpy(), 0, max(frames - 1, 0))
    offset = np.clip(alignment["offset_frame"].to_numpy(), onset + 1, frames)
    return {
        "pitch": notes.pitch.astype(np.int16),
        "velocity": notes.velocity.astype(np.int16),
        "score_onset": notes.onset.astype(np.int32),
        "score_duration": notes.duration.astype(np.int32),
        "onset_frame": onset.astype(np.int32),
        "offset_frame": offset.astype(np.int32),
        "performer_id": np.int16(performer_id),
    }


def save_features(path: str | Path, mel: np.ndarray | None, data: dict[str, np.ndarray]) -> None:
    """Write one recording's features (``mel`` None: an annotation-only recording); the same arrays
    always give the same bytes (DVC hashes them)."""
    write_npz(path, data if mel is None else {"mel": mel.astype(np.float32), **data})


def load_features(path: str | Path, *, mel: bool = True) -> dict[str, np.ndarray]:
    """Every key of :data:`NOTE_FEATURE_KEYS`, and ``mel`` where the file has one and ``mel`` is True
    (False: not read, e.g. for the alignment model, which needs only the notes and their frames)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError("feature file not found", path)
    with np.load(path) as data:
        missing = [k for k in NOTE_FEATURE_KEYS if k not in data]
        if missing:
            raise PipelineError(f"feature file lacks {', '.join(missing)}", path)
        keys = FEATURE_KEYS if mel and "mel" in data else NOTE_FEATURE_KEYS
        return {k: data[k] for k in keys}
