"""Shared by the baseline training stages: clips that carry their 16 kHz audio (the waveform and
spectrogram targets), over the same recordings and split as the synthesis model's clips."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import MelConfig, SplitConfig
from pipeline.datasets.clips import ClipDataset
from stages._training import FEATURES, clip_datasets

AUDIO = Path("data/audio16k")


def audio_clip_datasets(split: SplitConfig, mel: MelConfig) -> tuple[ClipDataset, ClipDataset, tuple[str, ...]]:
    """(train, validation, performer names) like :func:`stages._training.clip_datasets`, with audio."""
    train, val, performers = clip_datasets(split, mel)
    frames = dict(clip_frames=mel.clip_frames, hop_length=mel.hop_length)
    return (
        ClipDataset(FEATURES, train.recordings, audio_dir=AUDIO, **frames),
        ClipDataset(FEATURES, val.recordings, audio_dir=AUDIO, **frames),
        performers,
    )
