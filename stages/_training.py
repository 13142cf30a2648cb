"""Shared by the training stage scripts: their paths, the clip datasets of the pipeline's one split, and
the one way a stage builds its :class:`pipeline.training.run.TrainingJob` (:func:`training_job`).

Stages pick recordings by kind: every stage that needs sound (synthesis, the vocoders, the baselines)
reads only the train / validation recordings with audio; the alignment model (``needs_audio=False``)
reads every train / validation recording, annotation-only ones (human timing, no sound) included.
One performer table serves all: a performer with only annotation-only recordings has an embedding
row the synthesis models never train, and is never asked of them (the split excludes their held-out
audio recordings, and they have none in training)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.config import MelConfig, Params, SplitConfig
from pipeline.datasets.clips import ClipDataset, collate_clips
from pipeline.datasets.layout import read_performers
from pipeline.datasets.split import read_split
from pipeline.errors import PipelineError
from pipeline.models.base import Model
from pipeline.models.calibration import Calibration
from pipeline.training.run import TrainingJob, TrainingOutputs, data_fingerprint

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
# the options every training stage takes
TRAINING_OPTIONS = {"init-from": "a model.pt of the same model whose weights a fresh run starts from (fine-tuning)"}


def training_outputs(out: Path, metrics: Path, loss_csv: Path, loss_png: Path) -> TrainingOutputs:
    return TrainingOutputs(model_dir=out, metrics=metrics, loss_csv=loss_csv, loss_png=loss_png)


def training_recordings(features: Path, split: SplitConfig, *, needs_audio: bool = True) -> tuple[list[str], list[str]]:
    """(train, validation) recording ids: with ``needs_audio`` only those with audio, else every one
    (annotation-only included); the test part is never read by a training stage."""
    parts = read_split(features, split)
    if needs_audio:
        parts = parts.with_audio()
    if not parts.train:
        kind = "training recordings with audio" if needs_audio else "training recordings"
        raise PipelineError(f"the split leaves no {kind}", features / "index.csv")
    return parts.train, parts.validation


@dataclass(frozen=True)
class TrainingData:
    """A stage's training and validation sets, the recordings they hold, the input folders whose bytes
    identify them, and (for clip datasets) the performer names in embedding order."""

    train: Any
    validation: Any
    recordings: tuple[list[str], list[str]]
    inputs: tuple[Path, ...]
    performers: tuple[str, ...] = ()
    collate: Callable[[list], dict] = collate_clips


def clip_datasets(
    features: Path,
    performers: Path,
    split: SplitConfig,
    mel: MelConfig,
    notes: str = "sounding",
    audio: Path | None = None,
    *,
    needs_audio: bool = True,
) -> TrainingData:
    """The clips of the mel stage's features, split; with ``audio``, each clip also carries its 16 kHz
    audio (the baselines' waveform targets). ``needs_audio`` False (the alignment model): every
    train / validation recording, annotation-only ones too, as clips without a mel."""
    train_ids, val_ids = training_recordings(features, split, needs_audio=needs_audio)
    ids = read_performers(performers)
    names = tuple(sorted(ids, key=ids.get))
    if [ids[n] for n in names] != list(range(len(names))):
        raise PipelineError("performer ids must be 0 .. n-1", performers)
    frames = dict(clip_frames=mel.clip_frames, hop_length=mel.hop_length, notes=notes, audio_dir=audio, mel=needs_audio)
    train, validation = ClipDataset(features, train_ids, **frames), ClipDataset(features, val_ids, **frames)
    inputs = (features,) if audio is None else (features, audio)
    return TrainingData(train, validation, (train.recordings, validation.recordings), inputs, names)


def training_job(
    name: str,
    group: Any,
    params: Params,
    task: Any,
    model: Model,
    data: TrainingData,
    paths: dict[str, Path],
    init_from: str | Path | None = None,
    *,
    settings: dict[str, Any] | None = None,
    calibration: Calibration | None = None,
    dvc_stage: str | None = None,
) -> TrainingJob:
    """The job of stage ``train_<name>`` whose params group is ``group`` (its ``train`` block drives the
    loop; the group is what MLflow logs unless ``settings`` says more): ``task`` trains ``model`` on
    ``data``; ``paths`` are the stage's output options (:data:`OUTPUT_PATHS`), ``init_from`` its
    ``--init-from`` option."""
    return TrainingJob(
        name=name,
        task=task,
        model=model,
        train_set=data.train,
        val_set=data.validation,
        collate=data.collate,
        config=group.train,
        settings=settings if settings is not None else asdict(group),
        mel=params.mel,
        outputs=training_outputs(**paths),
        data_id=data_fingerprint(*data.inputs, extra=data.recordings),
        calibration=calibration or Calibration(),
        init_from=Path(init_from) if init_from else None,
        dvc_stage=dvc_stage,
    )
