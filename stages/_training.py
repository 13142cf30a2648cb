"""Shared by the training stage scripts: the clip datasets and their split."""

from __future__ import annotations

from pathlib import Path

from pipeline.datasets.clips import ClipDataset, split_recordings
from pipeline.datasets.layout import read_performers
from pipeline.errors import PipelineError

FEATURES = Path("data/features")


def clip_datasets(validation_share: float, seed: int, notes: str = "sounding") -> tuple[ClipDataset, ClipDataset, tuple[str, ...]]:
    """(train, validation, performer names in embedding order) over the mel stage's features."""
    everything = ClipDataset(FEATURES)
    train_ids, val_ids = split_recordings(everything.index, validation_share, seed)
    ids = read_performers(Path("data/audio16k"))
    names = tuple(sorted(ids, key=ids.get))
    if [ids[n] for n in names] != list(range(len(names))):
        raise PipelineError("performer ids must be 0 .. n-1", Path("data/audio16k/performers.json"))
    return ClipDataset(FEATURES, train_ids, notes=notes), ClipDataset(FEATURES, val_ids, notes=notes), names
