"""Training task of the synthesis model: aligned notes -> log-mel."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from pipeline.config import MelConfig, TransformerOptimizerConfig
from pipeline.loudness import level_offset_db
from pipeline.models.synthesis import SynthesisModel, synthesis_inputs
from pipeline.training.schedules import adam_with_transformer_schedule


class SynthesisTask:
    def __init__(self, model: SynthesisModel, optimizer: TransformerOptimizerConfig, mel: MelConfig) -> None:
        self.model, self.mel = model, mel
        self.modules = {"synthesis": model}
        self.optimizer_config = optimizer

    def optimizers(self):
        return {"synthesis": adam_with_transformer_schedule(self.model, self.optimizer_config)}

    def _predict(self, batch):
        return self.modules["synthesis"](**synthesis_inputs(self.model, batch))

    def training_step(self, batch, step) -> dict[str, float]:
        with step.autocast():
            loss = self.model.loss(self._predict(batch), batch["mel"], batch["frame_mask"])
        step.optimize("synthesis", loss)
        return {"loss": loss.item()}

    def validation_step(self, batch) -> dict[str, float]:
        return {"loss": self.model.loss(self._predict(batch), batch["mel"], batch["frame_mask"]).item()}

    @torch.no_grad()
    def calibrate(self, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """After training: the dB the model's mel falls short of the recordings' on ``batches`` (the
        validation clips: pieces it did not train on), pooled over their frames (:mod:`pipeline.loudness`),
        as its calibration's ``level_offset_db``."""
        was_training = self.model.training
        self.model.eval()
        target_power = predicted_power = 0.0
        for batch in batches:
            mask = batch["frame_mask"][:, None, :]
            predicted = self.model(**synthesis_inputs(self.model, batch)).double()  # not DDP's: rank 0 alone
            target_power += float((torch.exp(2 * batch["mel"].double()) * mask).sum())
            predicted_power += float((torch.exp(2 * predicted) * mask).sum())
        self.model.train(was_training)
        return {"level_offset_db": round(level_offset_db(target_power, predicted_power), 4)}

    def examples(self, batch) -> dict[str, Any]:
        # here, not at the top: `performer render` imports this module and must not pay for librosa (pipeline.mel)
        from pipeline.spectrogram import griffin_lim_from_mel

        frames = int(batch["frame_mask"][0].sum())
        pred = self._predict(batch)[0, :, :frames].float().cpu().numpy()
        target = batch["mel"][0, :, :frames].cpu().numpy()
        # a rough waveform of the predicted mel, to listen to the model before any vocoder exists
        return {
            "mel/predicted": pred,
            "mel/target": target,
            "audio/predicted_griffin_lim": griffin_lim_from_mel(pred, self.mel),
        }
