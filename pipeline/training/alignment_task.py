"""Training task of the alignment model: score notes -> performed onsets and durations (frames)."""

from __future__ import annotations

from typing import Any

import torch

from pipeline.config import TransformerOptimizerConfig
from pipeline.models.alignment import AlignmentModel, tempo_classes
from pipeline.models.tempo import tempo_centers
from pipeline.training.schedules import adam_with_transformer_schedule


def alignment_inputs(model: AlignmentModel, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | None]:
    """Model keyword arguments from a ``collate_clips`` batch (shared by training, evaluation, rendering)."""
    velocity = batch["velocity"] if model.hparams["use_velocity"] else None
    return dict(pitch=batch["pitch"], onset=batch["score_onset"], duration=batch["score_duration"],
                mask=batch["note_mask"], performer=batch["performer"],
                tempo=model_tempo_classes(model, batch["tempo_qpm"]).to(batch["pitch"].device), velocity=velocity)


def model_tempo_classes(model: AlignmentModel, qpm: torch.Tensor) -> torch.Tensor:
    """(B,) qpm -> the tempo class ids of ``model``'s own classes (its n_tempo_classes and tempo_range)."""
    return tempo_classes(qpm, model.hparams["n_tempo_classes"], tuple(model.hparams["tempo_range"]))


def model_class_tempo(model: AlignmentModel, qpm: torch.Tensor) -> torch.Tensor:
    """(B,) qpm -> the centre (qpm) of its class among ``model``'s tempo classes: what the model is told."""
    centers = torch.as_tensor(tempo_centers(model.hparams["n_tempo_classes"], tuple(model.hparams["tempo_range"])),
                              dtype=torch.float32)
    return centers[model_tempo_classes(model, qpm).cpu()]


class AlignmentTask:
    def __init__(self, model: AlignmentModel, optimizer: TransformerOptimizerConfig) -> None:
        self.model = model
        self.modules = {"alignment": model}
        self.optimizer_config = optimizer

    def optimizers(self):
        return {"alignment": adam_with_transformer_schedule(self.model, self.optimizer_config)}

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.modules["alignment"]  # DDP wrapper when distributed
        pred = net(**alignment_inputs(self.model, batch))
        return self.model.loss(pred, batch["target_onset"], batch["target_duration"], batch["note_mask"]), pred

    def training_step(self, batch, step) -> dict[str, float]:
        with step.autocast():
            loss, _ = self._loss(batch)
        step.optimize("alignment", loss)
        return {"loss": loss.item()}

    def validation_step(self, batch) -> dict[str, float]:
        loss, pred = self._loss(batch)
        mask = batch["note_mask"]
        onset_error = (pred[..., 0] - batch["target_onset"]).abs()[mask].mean()
        duration_error = (pred[..., 1] - batch["target_duration"]).abs()[mask].mean()
        return {"loss": loss.item(), "onset_mae_frames": onset_error.item(), "duration_mae_frames": duration_error.item()}

    def examples(self, batch) -> dict[str, Any]:
        return {}
