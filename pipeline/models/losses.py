"""Masked mean squared errors (padding never counts)."""

from __future__ import annotations

import torch


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(pred - target) ** 2`` over the positions where ``mask`` is True.

    ``mask`` broadcasts against ``pred`` (e.g. (B, N, 1) against (B, N, 2), or (B, 1, T) against
    (B, n_mels, T)); every element it selects counts once. Zero when nothing is selected.
    """
    pred, target = pred.float(), target.float()  # float32 sums, also for half-precision predictions
    mask = mask.to(pred.dtype).expand_as(pred)
    return ((pred - target) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)
