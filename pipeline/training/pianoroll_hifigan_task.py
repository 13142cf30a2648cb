"""Training task of the HiFi-GAN piano-roll baseline: the vocoder's GAN training, fed the score.

Batches are ``collate_clips`` batches of 5-second clips that carry their audio. The rolls are
built over the whole clip (a note's position roll needs the whole note), then training crops a
random ``segment_frames`` window of rolls and the matching audio from every clip, as HiFi-GAN
trains on 8192-sample segments; validation and examples use whole clips.
"""

from __future__ import annotations

import torch

from pipeline.config import MelConfig, TrainHifiganBaselineConfig
from pipeline.models.pianoroll_hifigan import PianoRollHifigan
from pipeline.training.hifigan_task import HifiganTask
from pipeline.training.windows import random_windows, take_frames, take_samples


class PianoRollHifiganTask(HifiganTask):
    log_stft = False
    calibrates_level = False  # its output is the system's, scored as it is

    def __init__(
        self, model: PianoRollHifigan, config: TrainHifiganBaselineConfig, mel: MelConfig, steps_per_epoch: int
    ) -> None:
        super().__init__(model, config, mel, steps_per_epoch)
        self.segment_frames = config.segment_frames
        self.hop = model.hop_length

    def generator_io(self, batch, training: bool) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        rolls = PianoRollHifigan.rolls(batch)  # (B, T, 256)
        audio = batch["audio"]  # (B, T * hop)
        if not training or rolls.shape[1] <= self.segment_frames:
            return (rolls, batch["performer"]), audio
        window = random_windows(batch["frame_mask"], self.segment_frames)  # (B, segment_frames)
        return (take_frames(rolls, window, 1), batch["performer"]), take_samples(audio, window, self.hop)
