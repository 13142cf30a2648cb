"""Training task of PerformanceNet: rolls -> log1p power spectrogram (MSE), Adam.

Batches are ``collate_clips`` batches of clips that carry their audio; the target is
``log1p(|STFT|^2)`` of the audio on the mel recipe's frames (:class:`pipeline.spectrogram.PowerSpectrogram`).
With ``segment_frames > 0`` training crops a random window of every clip (the model is fully
convolutional; CPU runs use short windows), validation uses whole clips.
"""

from __future__ import annotations

from typing import Any

import torch

from pipeline.config import MelConfig, TrainPerformanceNetConfig
from pipeline.models.performancenet import PerformanceNet, performancenet_loss
from pipeline.spectrogram import PowerSpectrogram, griffin_lim, log_mel_of_power
from pipeline.training.schedules import adam_betas
from pipeline.training.windows import random_windows, take_frames


def performancenet_io(spectrogram: PowerSpectrogram, batch: dict[str, torch.Tensor]):
    """(piano roll, onset/offset roll, target log1p power (B, bins, T), frame mask (B, T)) of a batch."""
    piano, onoff = PerformanceNet.rolls(batch)
    with torch.no_grad():
        target = torch.log1p(spectrogram(batch["audio"]))
    return piano, onoff, target, batch["frame_mask"]


class PerformanceNetTask:
    def __init__(self, model: PerformanceNet, config: TrainPerformanceNetConfig, mel: MelConfig) -> None:
        self.model = model
        self.spectrogram = PowerSpectrogram(mel)
        self.modules = {"performancenet": model, "spectrogram": self.spectrogram}
        self.config = config
        self.mel_config = mel

    def optimizers(self):
        c = self.config
        optimizer = torch.optim.Adam(self.model.parameters(), lr=c.learning_rate, betas=adam_betas(c.betas))
        return {"performancenet": (optimizer, lambda step: 1.0)}

    def training_step(self, batch, step) -> dict[str, float]:
        piano, onoff, target, mask = performancenet_io(self.spectrogram, batch)
        if self.config.segment_frames and mask.shape[1] > self.config.segment_frames:
            window = random_windows(mask, self.config.segment_frames)
            piano, onoff = take_frames(piano, window, 1), take_frames(onoff, window, 1)
            target, mask = take_frames(target, window, 2), torch.gather(mask, 1, window)
        with step.autocast():
            loss = performancenet_loss(self.modules["performancenet"](piano, onoff), target, mask)
        step.optimize("performancenet", loss)
        return {"loss": loss.item()}

    def validation_step(self, batch) -> dict[str, float]:
        piano, onoff, target, mask = performancenet_io(self.spectrogram, batch)
        return {"loss": performancenet_loss(self.model(piano, onoff), target, mask).item()}

    def examples(self, batch) -> dict[str, Any]:
        piano, onoff, target, mask = performancenet_io(self.spectrogram, batch)
        frames = int(mask[0].sum())
        pred = torch.expm1(self.model(piano[:1], onoff[:1]).float()[0, :, :frames]).clamp(min=0)
        power = torch.expm1(target[0, :, :frames])
        return {
            "mel/predicted": log_mel_of_power(pred, self.mel_config).cpu().numpy(),
            "mel/target": log_mel_of_power(power, self.mel_config).cpu().numpy(),
            "audio/predicted_griffin_lim": griffin_lim(
                pred.cpu().numpy(), self.mel_config, self.config.griffin_lim_iterations
            ),
        }
