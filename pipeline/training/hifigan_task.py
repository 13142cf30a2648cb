"""Training task of the vocoder (HiFi-GAN V2 or the source-filter vocoder): log-mel -> waveform.

Generator and discriminators alternate as in HiFi-GAN (LSGAN + feature matching x2 + mel L1 x45,
AdamW (0.8, 0.99), exponential decay). With ``discriminator_start > 0`` the first steps train the
generator on the mel loss alone, a cheap warm-up that makes short CPU runs produce sound.

What the generator is fed is :meth:`HifiganTask.generator_io`: the mel of the audio for the
vocoder; :class:`pipeline.training.pianoroll_hifigan_task.PianoRollHifiganTask` overrides it to
feed the score's rolls (the piano-roll baseline) and shares everything else.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pipeline.config import MelConfig, TrainHifiganBaselineConfig, TrainHifiganConfig
from pipeline.loudness import level_offset_db
from pipeline.mel import LogMelSpectrogram
from pipeline.models.hifigan import (
    HifiganLossWeights,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    dc_offset_loss,
    discriminators_loss,
    generator_losses,
    mel_l1_loss,
)
from pipeline.models.stft_loss import multi_resolution_stft_loss
from pipeline.training.mel_augment import vague_mel
from pipeline.training.schedules import adam_betas, exponential_schedule

if TYPE_CHECKING:
    from pipeline.models.pianoroll_hifigan import PianoRollHifigan
    from pipeline.models.vocoders import Vocoder


class HifiganTask:
    # the vocoder reports its MR-STFT distance (a column of the evaluate table; the loss term when
    # stft_weight > 0, else 0 in training); the piano-roll baseline keeps its recorded metrics
    log_stft = True
    # after training, the vocoder's level shortfall is measured (calibrate); not the baseline's: no vocoder
    calibrates_level = True

    def __init__(
        self,
        generator: Vocoder | PianoRollHifigan,
        config: TrainHifiganConfig | TrainHifiganBaselineConfig,
        mel: MelConfig,
        steps_per_epoch: int,
    ) -> None:
        self.generator = generator
        self.mel = LogMelSpectrogram(mel)
        # the discriminators (71 M parameters) only where a GAN step will run: a mel-only schedule
        # neither builds nor checkpoints them
        self.adversarial = config.discriminator_start < config.train.max_steps
        if self.adversarial:
            self.mpd, self.msd = MultiPeriodDiscriminator(), MultiScaleDiscriminator()
            self.modules = {"generator": generator, "mpd": self.mpd, "msd": self.msd, "mel": self.mel}
        else:
            self.modules = {"generator": generator, "mel": self.mel}
        self.config = config
        self.steps_per_epoch = steps_per_epoch
        self.weights = HifiganLossWeights(feature_matching=config.feature_matching_weight, mel=config.mel_weight)

    def optimizers(self):
        c = self.config
        rule = exponential_schedule(c.lr_decay, self.steps_per_epoch)
        g = torch.optim.AdamW(self.generator.parameters(), lr=c.learning_rate, betas=adam_betas(c.betas))
        if not self.adversarial:
            return {"generator": (g, rule)}
        d = torch.optim.AdamW(
            [*self.mpd.parameters(), *self.msd.parameters()], lr=c.learning_rate, betas=adam_betas(c.betas)
        )
        return {"generator": (g, rule), "discriminator": (d, rule)}

    def generator_io(self, batch, training: bool) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """(generator inputs, target audio (B, samples)) of a batch: here the log-mel of the audio
        (and the notes' excitation for the source-filter vocoder)."""
        audio = batch["audio"]
        with torch.no_grad():
            mel = self.mel(audio)  # (B, 80, samples // 256)
            augment = getattr(self.config, "mel_augment", 0.0)
            if training and augment > 0:
                mel = vague_mel(mel, augment)
        if self.generator.excitation:
            return (mel, batch["source"]), audio
        return (mel,), audio

    def training_step(self, batch, step) -> dict[str, float]:
        inputs, audio = self.generator_io(batch, training=True)
        with step.autocast():
            fake = self.modules["generator"](*inputs)  # (B, 1, samples)
        fake = fake.float()
        dc = dc_offset_loss(audio, fake)
        dc_weight = getattr(self.config, "dc_weight", 0.0)
        stft_weight = getattr(self.config, "stft_weight", 0.0)
        stft = multi_resolution_stft_loss(audio, fake) if stft_weight else fake.new_zeros(())
        extra = dc_weight * dc + stft_weight * stft
        if step.trainer.step < self.config.discriminator_start:
            loss = mel_l1_loss(audio, fake, self.mel)
            step.optimize("generator", self.weights.mel * loss + extra)
            return {
                "loss": self.weights.mel * loss.item(),
                "mel_l1": loss.item(),
                "dc": dc.item(),
                **({"mr_stft": stft.item()} if self.log_stft else {}),
            }
        with step.autocast():
            d_loss = discriminators_loss([self.modules["mpd"], self.modules["msd"]], audio, fake)
        step.optimize("discriminator", d_loss)
        # the generator step goes through the plain (unwrapped) discriminators: they are not updated here
        with step.autocast():
            losses = generator_losses([self.mpd, self.msd], audio, fake, self.mel, self.weights)
        step.optimize("generator", losses["total"] + extra)
        return {
            "loss": losses["total"].item(),
            "mel_l1": losses["mel"].item(),
            "dc": dc.item(),
            **({"mr_stft": stft.item()} if self.log_stft else {}),
            "adversarial": losses["adversarial"].item(),
            "feature_matching": losses["feature_matching"].item(),
            "discriminator": d_loss.item(),
        }

    def validation_step(self, batch) -> dict[str, float]:
        inputs, audio = self.generator_io(batch, training=False)
        fake = self.generator(*inputs).float()
        mel_l1 = mel_l1_loss(audio, fake, self.mel).item()
        scores = {"loss": self.weights.mel * mel_l1, "mel_l1": mel_l1}
        if self.log_stft:
            scores["mr_stft"] = multi_resolution_stft_loss(audio, fake).item()
        return scores

    @torch.no_grad()
    def calibrate(self, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """After training: the dB the vocoder's output falls short of the recordings on ``batches`` (the
        validation segments or clips), their real samples' power pooled (:mod:`pipeline.loudness`), as its
        calibration's ``level_offset_db`` (:func:`pipeline.inference.runtime.render.vocode` adds it back). Nothing
        where the stage's ``level_calibration`` is off (the paper's HiFi-GAN V2) nor for the piano-roll
        baseline, which is no vocoder."""
        if not self.calibrates_level or not getattr(self.config, "level_calibration", False):
            return {}
        was_training = self.generator.training
        self.generator.eval()
        target_power = produced_power = 0.0
        for batch in batches:
            inputs, audio = self.generator_io(batch, training=False)
            fake = self.generator(*inputs).float()[:, 0]
            n = min(fake.shape[-1], audio.shape[-1])
            target, produced = audio[:, :n].double() ** 2, fake[:, :n].double() ** 2
            if "frame_mask" in batch:  # clips padded to the batch's longest (segments are whole windows)
                real = batch["frame_mask"].repeat_interleave(self.generator.hop_length, dim=1)[:, :n]
                target, produced = target * real, produced * real
            target_power += float(target.sum())
            produced_power += float(produced.sum())
        self.generator.train(was_training)
        return {"level_offset_db": round(level_offset_db(target_power, produced_power), 4)}

    def examples(self, batch) -> dict[str, Any]:
        inputs, audio = self.generator_io({k: v[:1] for k, v in batch.items()}, training=False)
        fake = self.generator(*inputs).float()[0, 0]
        return {
            "audio/reconstructed": fake.cpu().numpy(),
            "audio/recording": audio[0].cpu().numpy(),
            "mel/reconstructed": self.mel(fake[None])[0].cpu().numpy(),
            "mel/recording": self.mel(audio)[0].cpu().numpy(),
        }

    def export_model(self) -> torch.nn.Module:
        """The inference generator: a copy with weight norm folded into the weights."""
        return copy.deepcopy(self.generator).eval().remove_weight_norm()


def recording_excitation(features_dir: Path, audio_dir: Path, generator, sample_rate: int):
    """``excitation(recording, samples)`` for :class:`pipeline.datasets.segments.AudioSegments`: the
    generator's excitation from the recording's aligned notes (the mel stage's features, tuning from
    the manifest), zero-padded to the audio's length."""
    from pipeline.datasets.layout import read_manifest
    from pipeline.features import load_features

    tuning = {r.id: float(r.tuning_cents) for r in read_manifest(audio_dir)}

    def excitation(recording: str, samples: int):
        import numpy as np

        data = load_features(Path(features_dir) / f"{recording}.npz")
        frames = min(data["mel"].shape[1], samples // generator.hop_length)
        source = generator.make_source(
            data["pitch"], data["onset_frame"], data["offset_frame"], frames, sample_rate, tuning.get(recording, 0.0)
        )
        return np.pad(source, [(0, 0)] * (source.ndim - 1) + [(0, samples - source.shape[-1])])

    return excitation
