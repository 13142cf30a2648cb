"""Stage `mel`: log-mel spectrogram and frame-level note data of every recording.

Writes data/features/<id>.npz, data/features/index.csv, metrics/mel.json and an example picture
plots/mel_example.png (log-mel with the aligned notes on top).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.audio import load_audio
from pipeline.config import Params
from pipeline.datasets.layout import read_manifest
from pipeline.errors import PipelineError
from pipeline.features import FEATURE_KEYS, note_features, save_features
from pipeline.io import atomic_dir, atomic_path, write_json
from pipeline.mel import LogMelSpectrogram
from pipeline.plots import plot_mel_with_notes
from pipeline.scores import NoteTable
from stages._common import stage_main

RAW = Path("data/raw")
AUDIO = Path("data/audio16k")
ALIGN = Path("data/alignments")
OUT = Path("data/features")
METRICS = Path("metrics/mel.json")
PICTURE = Path("plots/mel_example.png")


def run(params: Params) -> None:
    import torch

    recordings = read_manifest(AUDIO)
    mel_module = LogMelSpectrogram(params.mel)
    if params.mel.sample_rate != params.resample.sample_rate:
        raise PipelineError(
            f"mel.sample_rate ({params.mel.sample_rate}) must equal resample.sample_rate ({params.resample.sample_rate})"
        )
    rows, total, sums, squares = [], 0, 0.0, 0.0
    with atomic_dir(OUT) as tmp:
        for i, rec in enumerate(tqdm(recordings, desc="mel", unit="rec")):
            audio, _ = load_audio(AUDIO / rec.audio, sample_rate=params.mel.sample_rate)
            with torch.no_grad():
                mel = mel_module(torch.from_numpy(audio)).numpy()  # (n_mels, frames)
            notes = NoteTable.from_csv(RAW / rec.notes)
            alignment = pd.read_csv(ALIGN / f"{rec.id}.csv")
            data = note_features(notes, alignment, mel.shape[1], rec.performer_id)
            save_features(tmp / f"{rec.id}.npz", mel, data)
            rows.append(
                {
                    "id": rec.id,
                    "piece": rec.piece,
                    "performer": rec.performer,
                    "performer_id": rec.performer_id,
                    "frames": mel.shape[1],
                    "notes": len(notes),
                    "polyphonic": rec.polyphonic,
                    "tempo_qpm": rec.tempo_qpm,
                }
            )
            total += mel.shape[1]
            sums += float(mel.sum())
            squares += float(np.square(mel, dtype=np.float64).sum())
            if i == 0:
                plot_mel_with_notes(PICTURE, mel, data, params.mel, title=rec.id)
        with atomic_path(tmp / "index.csv") as index:
            pd.DataFrame(rows).to_csv(index, index=False)
    mean = sums / max(1, total * params.mel.n_mels)
    std = float(np.sqrt(max(0.0, squares / max(1, total * params.mel.n_mels) - mean**2)))
    hours = total * params.mel.hop_length / params.mel.sample_rate / 3600
    write_json(
        METRICS,
        {
            "recordings": len(rows),
            "frames": total,
            "hours": round(hours, 4),
            "mel_mean": round(mean, 4),
            "mel_std": round(std, 4),
            "keys": list(FEATURE_KEYS),
        },
    )
    print(f"mel: {len(rows)} recordings, {total} frames ({hours * 60:.1f} min) in {OUT}")


if __name__ == "__main__":
    stage_main(run, __doc__)
