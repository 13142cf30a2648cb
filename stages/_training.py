"""Shared by the training stage scripts: their paths and the clip datasets of the pipeline's one split."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import MelConfig, SplitConfig
from pipeline.datasets.clips import ClipDataset
from pipeline.datasets.layout import read_performers
from pipeline.datasets.split import read_split
from pipeline.errors import PipelineError
from pipeline.training.run import TrainingOutputs

# the paths every training stage takes (dvc.yaml names them in its command)
OUTPUT_PATHS = {
    "out": "output: the model folder (model.pt, checkpoints/, mlflow.json)",
    "metrics": "output: final losses and speed (JSON)",
    "loss-csv": "output: the loss curves (CSV, for dvc plots)",
    "loss-png": "output: the loss curves as a picture",
}
CLIP_PATHS = {
    "features": "input: the mel stage's folder (index.csv, <id>.npz)",
    "performers": "input: the performer table (performers.json of the resample stage)",
}
AUDIO_PATH = {"audio": "input: the resample stage's 16 kHz audio folder"}


def training_outputs(out: Path, metrics: Path, loss_csv: Path, loss_png: Path) -> TrainingOutputs:
    return TrainingOutputs(model_dir=out, metrics=metrics, loss_csv=loss_csv, loss_png=loss_png)


def training_recordings(features: Path, split: SplitConfig) -> tuple[list[str], list[str]]:
    """(train, validation) recording ids; the test part is never read by a training stage."""
    parts = read_split(features, split)
    if not parts.train:
        raise PipelineError("the split leaves no training recordings", features / "index.csv")
    return parts.train, parts.validation


def clip_datasets(
    features: Path,
    performers: Path,
    split: SplitConfig,
    mel: MelConfig,
    notes: str = "sounding",
    audio: Path | None = None,
) -> tuple[ClipDataset, ClipDataset, tuple[str, ...]]:
    """(train, validation, performer names in embedding order) over the mel stage's features; with
    ``audio``, each clip also carries its 16 kHz audio (the baselines' waveform targets)."""
    train_ids, val_ids = training_recordings(features, split)
    ids = read_performers(performers)
    names = tuple(sorted(ids, key=ids.get))
    if [ids[n] for n in names] != list(range(len(names))):
        raise PipelineError("performer ids must be 0 .. n-1", performers)
    frames = dict(clip_frames=mel.clip_frames, hop_length=mel.hop_length, notes=notes, audio_dir=audio)
    return ClipDataset(features, train_ids, **frames), ClipDataset(features, val_ids, **frames), names
