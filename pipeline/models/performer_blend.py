"""Performer embeddings for one performer or a blend of several (what `performer render --performer
aurora:0.7,bruno:0.3` plays): shared by the alignment and the synthesis model."""

from __future__ import annotations

import torch
from torch import nn


def performer_vectors(
    table: nn.Embedding, performer: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, D) performer embeddings: the rows of ``table`` for the ids ``performer`` (B,) or, given
    ``weights`` (B, n_performers) (a blend per item), the weighted sums of all its rows.

    Without ``weights`` this is the plain lookup (what training runs). The blend is products and a
    sum, not a matmul: a one-hot row of ``weights`` gives exactly the looked-up row (``x * 1`` plus
    zeros, in any precision and summation order, with no TF32 or autocast rounding of a matmul).
    """
    if weights is None:
        return table(performer)
    if weights.ndim != 2 or weights.shape != (performer.shape[0], table.num_embeddings):
        raise ValueError(
            f"performer weights must be (batch, n_performers) = ({performer.shape[0]}, {table.num_embeddings}), "
            f"got {tuple(weights.shape)}"
        )
    rows = table.weight
    return (weights.to(device=rows.device, dtype=rows.dtype)[:, :, None] * rows[None]).sum(dim=1)
