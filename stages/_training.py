"""Shared by the training stage scripts: the clip datasets of the pipeline's one split."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import MelConfig, SplitConfig
from pipeline.datasets.clips import ClipDataset
from pipeline.datasets.layout import read_performers
from pipeline.datasets.split import read_split
from pipeline.errors import PipelineError

FEATURES = Path("data/features")


def training_recordings(split: SplitConfig) -> tuple[list[str], list[str]]:
    """(train, validation) recording ids; the test part is never read by a training stage."""
    parts = read_split(FEATURES, split)
    if not parts.train:
        raise PipelineError("the split leaves no training recordings", FEATURES / "index.csv")
    return parts.train, parts.validation


def clip_datasets(
    split: SplitConfig, mel: MelConfig, notes: str = "sounding"
) -> tuple[ClipDataset, ClipDataset, tuple[str, ...]]:
    """(train, validation, performer names in embedding order) over the mel stage's features."""
    train_ids, val_ids = training_recordings(split)
    ids = read_performers(Path("data/audio16k"))
    names = tuple(sorted(ids, key=ids.get))
    if [ids[n] for n in names] != list(range(len(names))):
        raise PipelineError("performer ids must be 0 .. n-1", Path("data/audio16k/performers.json"))
    frames = dict(clip_frames=mel.clip_frames, hop_length=mel.hop_length, notes=notes)
    return ClipDataset(FEATURES, train_ids, **frames), ClipDataset(FEATURES, val_ids, **frames), names
