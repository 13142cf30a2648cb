"""Everything a training stage does around ``Trainer.fit``: MLflow run, outputs, metrics, plots.

The outputs of a training stage (:class:`TrainingOutputs`; dvc.yaml names the paths, e.g. for
``train_alignment``: models/alignment, metrics/train_alignment.json, plots/train_alignment_loss.*):

    <model_dir>/model.pt              the model: class, constructor arguments, calibration, weights
    <model_dir>/checkpoints/          the resumable state (kept across runs: DVC ``persist``)
    <model_dir>/mlflow.json           the MLflow run and the logged model's URI
    <model_dir>/training_time.json    the steps trained and the seconds they took, over every session of
                                      the run (what steps per second is computed from; like mlflow.json,
                                      outside the folder's DVC hash: seconds differ run to run)
    <metrics>                         final validation losses, steps, steps per second (JSON)
    <loss_csv>                        step, split, loss (for ``dvc plots``)
    <loss_png>                        the loss curves as a picture
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pipeline.config import MelConfig, TrainConfig
from pipeline.errors import PipelineError
from pipeline.io import atomic_path, file_sha256, write_json
from pipeline.models.base import Model
from pipeline.models.calibration import Calibration
from pipeline.models.persistence import load_model, save_model
from pipeline.training.loop import Trainer, distributed_env


def seed_everything(seed: int) -> None:
    """Seed every RNG a stage draws from *before* it builds its model.

    The weights' initial values come from torch's global RNG; the trainer seeds it only after the
    model exists, so without this every fresh process started from other weights (and the same
    stage on the same data ended at val loss 23.8 in one run and 49.3 in the next).
    """
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (seeds the legacy global RNG that libraries still draw from)
    torch.manual_seed(seed)


def data_fingerprint(*paths: str | Path, extra: object = None) -> str:
    """Identity of the training data: the name and bytes of every file under ``paths``, plus ``extra``.

    By content, not by mtime: an upstream stage that re-runs and writes the same bytes (as every
    data stage does for the same code and params) keeps a finished checkpoint resumable, while any
    changed byte makes the next training start afresh, so a checkpoint is never resumed on data it
    was not trained on. Names are relative to each root, so a moved or re-cloned repo resumes too.
    """
    digest = hashlib.sha256(repr(extra).encode())
    for root in map(Path, paths):
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for f in files:
            name = f.relative_to(root).as_posix() if root.is_dir() else f.name
            digest.update(f"{name}|{f.stat().st_size}|".encode())
            with f.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def plot_history(path: Path, history: pd.DataFrame, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for split, rows in history.groupby("split"):
        ax.plot(rows["step"], rows["loss"], label=split, marker="o" if split == "val" else None, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


@dataclass(frozen=True)
class TrainingOutputs:
    """Where a training stage writes (the paths its dvc.yaml entry names)."""

    model_dir: Path
    metrics: Path
    loss_csv: Path
    loss_png: Path


# train-block settings a run may change and still continue from its checkpoint (train longer, log more often)
RESUMABLE = ("max_steps", "validate_every", "checkpoint_every", "log_every", "num_workers")


# stage settings that act only after training (a measurement stored with the model): a finished checkpoint
# still resumes when they change
AFTER_TRAINING = ("level_calibration",)


def resume_settings(logged_params: dict[str, Any]) -> dict[str, Any]:
    """The training settings a checkpoint must share to be resumed: ``logged_params`` without the
    :data:`RESUMABLE` entries of its ``train`` block and without :data:`AFTER_TRAINING`."""
    settings = {k: v for k, v in logged_params.items() if k not in AFTER_TRAINING}
    if isinstance(settings.get("train"), dict):
        settings["train"] = {k: v for k, v in settings["train"].items() if k not in RESUMABLE}
    return settings


TRAINING_TIME = "training_time.json"


def training_speed(out_dir: Path, start_step: int, end_step: int, elapsed: float) -> float | None:
    """Steps per second of the run that has reached ``end_step``: this session's ``elapsed`` seconds for
    steps ``start_step`` to ``end_step``, added to the sessions before it (``<out_dir>/training_time.json``).
    So a stage resumed at its last step (no step to time) still reports the speed its steps were trained
    at; None when no step of this run was ever timed (its record lost)."""
    path = out_dir / TRAINING_TIME
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = None
    if not (isinstance(record, dict) and start_step > 0 and record.get("to_step") == start_step):
        record = {"steps": 0, "seconds": 0.0, "to_step": start_step}  # a fresh run, or sessions not on record
    if end_step > start_step:
        record = {
            "steps": record["steps"] + end_step - start_step,
            "seconds": record["seconds"] + elapsed,
            "to_step": end_step,
        }
        write_json(path, record)
    return round(record["steps"] / record["seconds"], 4) if record["steps"] and record["seconds"] > 0 else None


@dataclass(frozen=True)
class TrainingJob:
    """Everything one training stage trains: built by the stage script (``stages/_training.py``'s
    ``training_job``), run by :func:`run_training`.

    ``model`` is what ``model.pt`` will hold (``task`` trains it, maybe beside other modules such as
    discriminators); ``settings`` the stage's params group as logged to MLflow (a checkpoint resumes
    only under the same settings but those of :data:`RESUMABLE` and :data:`AFTER_TRAINING`);
    ``data_id`` the identity of its data (:func:`data_fingerprint`); ``calibration`` what the stage
    measured on its data before training (the task's ``calibrate`` adds what it measures after);
    ``init_from``: a model file (another stage's ``model.pt``) whose weights a fresh run starts from,
    e.g. to fine-tune a model pre-trained on another corpus; ``dvc_stage`` the stage in dvc.lock whose
    input hashes tag the MLflow run (default ``train_<name>``); ``root`` the project (its MLflow store
    and dvc.lock; ``outputs`` are not relative to it)."""

    name: str
    task: Any
    model: Model
    train_set: Any
    val_set: Any
    collate: Callable[[list], dict[str, torch.Tensor]]
    config: TrainConfig
    settings: dict[str, Any]
    mel: MelConfig
    outputs: TrainingOutputs
    data_id: str = ""
    calibration: Calibration = field(default_factory=Calibration)
    init_from: Path | None = None
    dvc_stage: str | None = None
    root: Path = Path(".")

    @property
    def stage(self) -> str:
        return f"train_{self.name}"


def seed_state(model: Model, path: Path) -> dict[str, torch.Tensor]:
    """The weights of the model file ``path`` for ``model`` to start from: the same class with the same
    shapes (its settings may differ in what holds no weight, e.g. dropout). Checked before any training."""
    theirs = load_model(path, type(model)).state_dict()
    ours = model.state_dict()
    mismatched = sorted(
        k for k in ours.keys() | theirs.keys() if k not in ours or k not in theirs or ours[k].shape != theirs[k].shape
    )
    if mismatched:
        raise PipelineError(
            f"its weights do not fit this {type(model).__name__} ({', '.join(mismatched[:3])} ...)", path
        )
    return theirs


def run_training(job: TrainingJob) -> dict[str, float]:
    """Train ``job.task`` for stage ``train_<job.name>``; rank 0 writes the outputs and the MLflow run.

    ``job.model`` is saved to ``outputs.model_dir``/model.pt with its calibration; the module logged to
    MLflow is ``task.export_model()`` when the task has one (e.g. the vocoder without weight norm).
    A checkpoint is resumed only if the model's arguments, ``data_id``, the seed model and the
    training settings (all but how long and how often: :data:`RESUMABLE`) match the ones it was
    written with: a changed loss weight or learning rate starts afresh.
    """
    root, out_dir, stage, task, model = Path(job.root), job.outputs.model_dir, job.stage, job.task, job.model
    rank, _, world = distributed_env()
    seed = seed_state(model, job.init_from) if job.init_from is not None else None  # a bad file fails here
    seed_id = file_sha256(job.init_from) if job.init_from is not None else None
    trainer = Trainer(
        task,
        job.train_set,
        job.val_set,
        job.collate,
        job.config,
        out_dir,
        hparams={
            "model": model.config(),
            "data": job.data_id,
            "settings": resume_settings(job.settings),
            **({"init_from": seed_id} if seed_id else {}),
        },
    )
    if seed is not None and not trainer.resumed:
        model.load_state_dict(seed)  # in place: the trainer's modules are the task's, on its device
    tracker = None
    if rank == 0:
        from pipeline.tracking import MlflowTracker, dvc_dep_tags

        if not trainer.resumed:  # a fresh start is a new MLflow run; a resumed one continues its run
            (out_dir / "mlflow_run_id").unlink(missing_ok=True)
        tags = {
            "stage": stage,
            "world_size": str(world),
            **dvc_dep_tags(job.dvc_stage or stage, root),
        }
        tracker = MlflowTracker(
            "deep-performer", stage, out_dir, params=job.settings, tags=tags, root=root, mel=job.mel
        )
        trainer.tracker = tracker
    start_step, started = trainer.step, time.perf_counter()
    try:
        final = trainer.fit()
    except BaseException:
        if tracker is not None:
            tracker.end("KILLED")
        raise
    elapsed = time.perf_counter() - started
    if rank != 0:
        return final
    assert tracker is not None  # rank 0 made one
    # measured on the validation set after training (a level offset), stored in the model's calibration
    measured = task.calibrate(trainer.validation_batches()) if hasattr(task, "calibrate") else {}
    model.calibration = replace(job.calibration, **measured)
    save_model(out_dir / "model.pt", model)
    history = pd.DataFrame(trainer.history)
    metrics = {
        "steps": trainer.step,
        "train_loss": float(history[history.split == "train"]["loss"].iloc[-1]) if len(history) else float("nan"),
        **{f"val_{k}": round(float(v), 6) for k, v in final.items()},
        **measured,
        "steps_per_second": training_speed(out_dir, start_step, trainer.step, elapsed),
        "device": str(trainer.device),
        "world_size": world,
    }
    write_json(job.outputs.metrics, metrics)
    curve = history[["step", "split", "loss"]] if len(history) else pd.DataFrame(columns=["step", "split", "loss"])
    with atomic_path(job.outputs.loss_csv) as tmp:
        curve.to_csv(tmp, index=False)
    plot_history(job.outputs.loss_png, curve, f"{stage} ({trainer.step} steps)")
    tracker.log_artifact(job.outputs.loss_png)
    tracker.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)}, trainer.step)
    export = task.export_model() if hasattr(task, "export_model") else model.eval()
    uri = tracker.log_model(export, job.name)
    write_json(out_dir / "mlflow.json", {"run_id": tracker.run_id, "model_uri": uri})
    tracker.end()
    print(f"{stage}: {trainer.step} steps, val {final}, model {out_dir / 'model.pt'}, MLflow {uri}")
    return final
