"""The mel stage's work: every recording's log-mel spectrogram and frame-level note data.

Writes ``<out>/<id>.npz`` (see :mod:`pipeline.features`) and ``<out>/index.csv`` (one row per
recording: the split and the training stages read it), and returns corpus statistics. Recordings whose
alignment confidence is under ``align.min_confidence`` are left out (a warning names them) and listed in
``<out>/left_out.csv`` (:mod:`pipeline.datasets.confidence`), which the evaluate report shows.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from pipeline.audio import load_audio
from pipeline.config import MelConfig
from pipeline.datasets.confidence import (
    LEFT_OUT_COLUMNS,
    LEFT_OUT_FILE,
    LOW_CONFIDENCE,
    low_confidence,
    read_confidence,
)
from pipeline.datasets.layout import Recording
from pipeline.errors import PipelineError
from pipeline.features import FEATURE_KEYS, note_features, save_features
from pipeline.io import atomic_path
from pipeline.mel import LogMelSpectrogram
from pipeline.plots import plot_mel_with_notes
from pipeline.scores import NoteTable


def featurize_corpus(
    recordings: list[Recording],
    raw: Path,
    audio_dir: Path,
    alignments: Path,
    mel: MelConfig,
    out: Path,
    min_confidence: float,
    picture: Path | None = None,
) -> dict:
    """Features of every recording aligned with at least ``min_confidence`` (``alignments``/confidence.json)
    into ``out``; ``picture``: the first one's log-mel with its aligned notes on top. Returns recordings,
    frames, hours, the mel's mean and std, the feature keys, and the ids left out."""
    left_out = drop_low_confidence(recordings, alignments, min_confidence, out)
    if recordings and len(left_out) == len(recordings):  # the caller writes into a temporary: old features stay
        raise PipelineError(
            f"every recording is aligned with less than align.min_confidence {min_confidence:g}: no corpus left "
            "(wrong scores? see metrics/align.json, or lower the setting)",
            alignments,
        )
    recordings = [r for r in recordings if r.id not in left_out]
    mel_module = LogMelSpectrogram(mel)
    rows, total, sums, squares = [], 0, 0.0, 0.0
    for i, rec in enumerate(tqdm(recordings, desc="mel", unit="rec")):
        audio, _ = load_audio(audio_dir / rec.audio, sample_rate=mel.sample_rate)
        with torch.no_grad():
            spectrogram = mel_module(torch.from_numpy(audio)).numpy()  # (n_mels, frames)
        notes = NoteTable.from_csv(raw / rec.notes)
        alignment = pd.read_csv(alignments / f"{rec.id}.csv")
        data = note_features(notes, alignment, spectrogram.shape[1], rec.performer_id)
        save_features(out / f"{rec.id}.npz", spectrogram, data)
        rows.append(
            {
                "id": rec.id,
                "piece": rec.piece,
                "performer": rec.performer,
                "performer_id": rec.performer_id,
                "frames": spectrogram.shape[1],
                "notes": len(notes),
                "polyphonic": rec.polyphonic,
                "tempo_qpm": rec.tempo_qpm,
            }
        )
        total += spectrogram.shape[1]
        sums += float(spectrogram.sum())
        squares += float(np.square(spectrogram, dtype=np.float64).sum())
        if i == 0 and picture is not None:
            plot_mel_with_notes(picture, spectrogram, data, mel, title=rec.id)
    with atomic_path(out / "index.csv") as index:
        pd.DataFrame(rows).to_csv(index, index=False)
    mean = sums / max(1, total * mel.n_mels)
    std = float(np.sqrt(max(0.0, squares / max(1, total * mel.n_mels) - mean**2)))
    return {
        "recordings": len(rows),
        "frames": total,
        "hours": round(total * mel.hop_length / mel.sample_rate / 3600, 4),
        "mel_mean": round(mean, 4),
        "mel_std": round(std, 4),
        "keys": list(FEATURE_KEYS),
        "left_out": left_out,
    }


def drop_low_confidence(recordings: list[Recording], alignments: Path, min_confidence: float, out: Path) -> list[str]:
    """Ids of the recordings aligned with less than ``min_confidence``: listed in ``out``/left_out.csv
    (written even when empty) and named in a warning."""
    confidence = read_confidence(alignments)
    missing = [r.id for r in recordings if r.id not in confidence]
    if missing:
        raise PipelineError(f"no alignment confidence for {', '.join(missing)} (re-run the align stage)", alignments)
    low = set(low_confidence({r.id: confidence[r.id] for r in recordings}, min_confidence))
    rows = [
        {
            "id": r.id,
            "piece": r.piece,
            "performer": r.performer,
            "confidence": confidence[r.id],
            "reason": f"{LOW_CONFIDENCE} {confidence[r.id]:.2f} < align.min_confidence {min_confidence:g}",
        }
        for r in recordings
        if r.id in low
    ]
    with atomic_path(out / LEFT_OUT_FILE) as tmp:
        pd.DataFrame(rows, columns=LEFT_OUT_COLUMNS).to_csv(tmp, index=False)
    if rows:
        named = ", ".join(f"{row['id']} ({row['confidence']:.2f})" for row in rows)
        warnings.warn(
            f"left out of training, alignment confidence under align.min_confidence {min_confidence:g}: {named}",
            stacklevel=2,
        )
    return [r.id for r in recordings if r.id in low]
