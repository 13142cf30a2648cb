"""Note-wise positional encoding: where a frame lies inside its note, as a gain on the note embedding.

For a note embedding ``v`` and the relative position ``p`` in [0, 1] of a frame inside the note
(pipeline.models.mixer), the frame's embedding is

    v_frame = (1 + p * w) * v          (elementwise; w a learnable (D,) vector)

``w`` starts at small random values (N(0, init_std^2), 0.01 by default), so v_frame ~= v at
first; with w = 0 the encoding is the identity. Because the mixer sums notes, it is applied per
note before the sum, which splits into the plain mix plus one more batched matmul:

    frame_t = sum_n s(n,t) (1 + p(n,t) w) * v_n = mix_t + w * sum_n s(n,t) p(n,t) v_n
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.mixer import Mixed


class NoteWisePositionalEncoding(nn.Module):
    def __init__(self, dim: int = 128, init_std: float = 0.01) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim) * init_std)

    def encode(self, notes: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """The formula itself: (..., D) note embeddings at (...) positions -> (..., D)."""
        return (1.0 + position[..., None] * self.weight) * notes

    def forward(self, notes: torch.Tensor, mixed: Mixed) -> torch.Tensor:
        """(B, N, D) note embeddings and their :class:`Mixed` -> (B, T, D) encoded frame embeddings."""
        return mixed.frames + self.weight * torch.bmm(mixed.sounding * mixed.position, notes)
