"""The HiFi-GAN piano-roll baseline (Deep Performer paper §4.2, appendix B.4): aligned notes -> waveform.

    piano roll + position roll (B, T, 2 x 128) --Linear--> (B, T, C)
    + performer embedding (B, C)                 --HiFi-GAN V2 generator--> (B, 1, T * 256)

C is the generator's input width (80, where the vocoder takes mel bands), so the generator is the
unchanged V2 of :mod:`pipeline.models.hifigan`; it is trained with the vocoder's losses (LSGAN,
feature matching x2, mel L1 x45) but straight from the score, with no mel in between.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.base import Model
from pipeline.models.hifigan import Generator
from pipeline.models.rolls import piano_and_position_rolls

__all__ = ["PianoRollHifigan"]


class PianoRollHifigan(Model):
    def __init__(
        self, n_performers: int = 32, generator: dict | None = None, performer_names: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        if len(performer_names) > n_performers:
            raise ValueError(f"{len(performer_names)} performer names for {n_performers} performer embeddings")
        self.generator = Generator(**(generator or {}))
        width = self.generator.hparams["in_channels"]
        self.roll_projection = nn.Linear(2 * 128, width)
        self.performer = nn.Embedding(n_performers, width)
        self.hop_length = self.generator.hop_length

    def forward(self, rolls: torch.Tensor, performer: torch.Tensor) -> torch.Tensor:
        """rolls (B, T, 256) = [piano roll, position roll]; performer (B,) -> waveform (B, 1, T * hop)."""
        x = self.roll_projection(rolls) + self.performer(performer)[:, None, :]
        return self.generator(x.transpose(1, 2))

    @staticmethod
    def rolls(batch: dict[str, torch.Tensor], n_frames: int | None = None) -> torch.Tensor:
        """(B, T, 256) piano and position rolls of a ``collate_clips`` batch."""
        frames = n_frames or batch["frame_mask"].shape[1]
        piano, position = piano_and_position_rolls(
            batch["pitch"], batch["onset_frame"], batch["offset_frame"], batch["note_mask"], frames
        )
        return torch.cat([piano, position], dim=-1)

    def remove_weight_norm(self) -> PianoRollHifigan:
        """Fold the generator's weight norm for inference (in place; returns ``self``)."""
        self.generator.remove_weight_norm()
        return self
