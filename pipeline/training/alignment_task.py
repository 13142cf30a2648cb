"""Training task of the alignment model: score notes -> performed onsets and durations (frames)."""

from __future__ import annotations

from typing import Any

import torch

from pipeline.config import TransformerOptimizerConfig
from pipeline.models.alignment import AlignmentModel, alignment_inputs, note_errors
from pipeline.training.schedules import adam_with_transformer_schedule


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
        onset_error, duration_error = note_errors(pred[..., 0], pred[..., 1], batch)
        return {
            "loss": loss.item(),
            "onset_mae_frames": onset_error.mean().item(),
            "duration_mae_frames": duration_error.mean().item(),
        }

    def examples(self, batch) -> dict[str, Any]:
        return {}
