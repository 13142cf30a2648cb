"""The mel stage's work: every recording's log-mel spectrogram and frame-level note data.

Writes ``<out>/<id>.npz`` (see :mod:`pipeline.features`) and ``<out>/index.csv`` (one row per
recording: the split and the training stages read it; ``has_audio`` False for an annotation-only
recording, whose features have no ``mel`` and whose ``frames`` is the frame count its timing spans), and
returns corpus statistics (the mel's over the recordings with audio only). Recordings with audio whose
alignment confidence is under ``align.min_confidence`` are left out (a warning names them) and listed in
``<out>/left_out.csv`` (:mod:`pipeline.datasets.confidence`), which the evaluate report shows; an
annotation-only recording's timing is its reference, never left out for confidence.
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
    DTW,
    LEFT_OUT_COLUMNS,
    LEFT_OUT_FILE,
    LOW_CONFIDENCE,
    REFERENCE,
    SOURCES_FILE,
    low_confidence,
    read_confidence,
    read_sources,
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
    """Features of every annotation-only recording and of every recording with audio aligned with at
    least ``min_confidence`` (``alignments``/confidence.json) into ``out``; ``picture``: the first
    recording with audio's log-mel with its aligned notes on top. Returns recordings (with audio and
    annotation-only), frames and hours of audio, the mel's mean and std, the feature keys, and the ids
    left out."""
    check_sources(recordings, alignments)
    audible = [r for r in recordings if r.has_audio]
    left_out = drop_low_confidence(audible, alignments, min_confidence, out)
    if audible and len(left_out) == len(audible):  # the caller writes into a temporary: old features stay
        raise PipelineError(
            f"every recording with audio is aligned with less than align.min_confidence {min_confidence:g}: no "
            "corpus left (wrong scores? see metrics/align.json, or lower the setting)",
            alignments,
        )
    recordings = [r for r in recordings if r.id not in left_out]
    mel_module = LogMelSpectrogram(mel)
    rows, total, sums, squares = [], 0, 0.0, 0.0
    pictured = picture is None
    for rec in tqdm(recordings, desc="mel", unit="rec"):
        notes = NoteTable.from_csv(raw / rec.notes)
        alignment = pd.read_csv(alignments / f"{rec.id}.csv")
        if rec.has_audio:
            audio, _ = load_audio(audio_dir / rec.audio, sample_rate=mel.sample_rate)
            with torch.no_grad():
                spectrogram = mel_module(torch.from_numpy(audio)).numpy()  # (n_mels, frames)
            frames = spectrogram.shape[1]
        else:  # no sound: the frames its timing spans (the last note's end)
            spectrogram, frames = None, int(alignment["offset_frame"].max())
        data = note_features(notes, alignment, frames, rec.performer_id)
        save_features(out / f"{rec.id}.npz", spectrogram, data)
        rows.append(
            {
                "id": rec.id,
                "piece": rec.piece,
                "performer": rec.performer,
                "performer_id": rec.performer_id,
                "frames": frames,
                "notes": len(notes),
                "polyphonic": rec.polyphonic,
                "tempo_qpm": rec.tempo_qpm,
                "has_audio": rec.has_audio,
            }
        )
        if spectrogram is None:
            continue
        total += frames
        sums += float(spectrogram.sum())
        squares += float(np.square(spectrogram, dtype=np.float64).sum())
        if not pictured and picture is not None:
            plot_mel_with_notes(picture, spectrogram, data, mel, title=rec.id)
            pictured = True
    with atomic_path(out / "index.csv") as index:
        pd.DataFrame(rows).to_csv(index, index=False)
    mean = sums / max(1, total * mel.n_mels)
    std = float(np.sqrt(max(0.0, squares / max(1, total * mel.n_mels) - mean**2)))
    return {
        "recordings": len(rows),
        "with_audio": sum(bool(row["has_audio"]) for row in rows),
        "annotation_only": sum(not row["has_audio"] for row in rows),
        "frames": total,  # of audio: the mel statistics' and the hours'
        "hours": round(total * mel.hop_length / mel.sample_rate / 3600, 4),
        "mel_mean": round(mean, 4),
        "mel_std": round(std, 4),
        "keys": list(FEATURE_KEYS),
        "left_out": left_out,
    }


def check_sources(recordings: list[Recording], alignments: Path) -> None:
    """Each recording's alignment came from where the manifest says it must (DTW with audio, the
    reference without): a stale alignments folder of another corpus fails here, naming the recording."""
    sources = read_sources(alignments)
    for rec in recordings:
        want = DTW if rec.has_audio else REFERENCE
        if sources.get(rec.id) != want:
            raise PipelineError(
                f"recording {rec.id}: alignment source {sources.get(rec.id)!r}, expected {want!r} "
                "(re-run the align stage)",
                alignments / SOURCES_FILE,
            )


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
