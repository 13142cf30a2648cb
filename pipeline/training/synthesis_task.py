"""Training task of the synthesis model: aligned notes -> log-mel."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pipeline.config import MelConfig, TransformerOptimizerConfig
from pipeline.models.synthesis import SynthesisModel
from pipeline.training.schedules import adam_with_transformer_schedule


def synthesis_inputs(model: SynthesisModel, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | None]:
    """Model keyword arguments from a ``collate_clips`` batch (shared by training, evaluation, rendering)."""
    velocity = batch["velocity"] if model.hparams["use_velocity"] else None
    return dict(pitch=batch["pitch"], onset=batch["score_onset"], duration=batch["score_duration"],
                onset_frame=batch["onset_frame"], offset_frame=batch["offset_frame"], note_mask=batch["note_mask"],
                performer=batch["performer"], frame_mask=batch["frame_mask"], velocity=velocity)


def griffin_lim(mel: np.ndarray, config: MelConfig | None = None, iterations: int = 32) -> np.ndarray:
    """A rough waveform of a log-mel, to listen to a synthesis model before any vocoder exists."""
    import librosa

    c = config or MelConfig()
    return librosa.feature.inverse.mel_to_audio(
        np.exp(mel), sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
        fmin=c.fmin, fmax=c.fmax, power=1.0, n_iter=iterations,
    ).astype(np.float32)


class SynthesisTask:
    def __init__(self, model: SynthesisModel, optimizer: TransformerOptimizerConfig) -> None:
        self.model = model
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

    def examples(self, batch) -> dict[str, Any]:
        frames = int(batch["frame_mask"][0].sum())
        pred = self._predict(batch)[0, :, :frames].float().cpu().numpy()
        target = batch["mel"][0, :, :frames].cpu().numpy()
        return {"mel/predicted": pred, "mel/target": target, "audio/predicted_griffin_lim": griffin_lim(pred)}
