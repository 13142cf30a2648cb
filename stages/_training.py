"""Shared by the training stage scripts: the clip datasets and their split."""

from __future__ import annotations

from pathlib import Path

from pipeline.datasets.clips import ClipDataset, split_recordings
from pipeline.datasets.layout import read_performers

FEATURES = Path("data/features")


def clip_datasets(validation_share: float, seed: int, notes: str = "sounding") -> tuple[ClipDataset, ClipDataset, int]:
    """(train, validation, number of performers) over the mel stage's features."""
    everything = ClipDataset(FEATURES)
    train_ids, val_ids = split_recordings(everything.index, validation_share, seed)
    n_performers = len(read_performers(Path("data/audio16k")))
    return ClipDataset(FEATURES, train_ids, notes=notes), ClipDataset(FEATURES, val_ids, notes=notes), n_performers
