"""Random training windows inside padded clip batches (the fully convolutional baselines train on
short windows of 5-second clips, as HiFi-GAN trains on 8192-sample segments)."""

from __future__ import annotations

import torch


def random_windows(frame_mask: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, frames) frame indices of one random window inside each item's real frames.

    ``frame_mask`` (B, T) bool. An item with fewer real frames than ``frames`` gets the window at
    0 (reaching into its padding). Draws from the global RNG, which checkpoints restore on resume.
    """
    real = frame_mask.sum(dim=1)
    room = (real - frames).clamp(min=0) + 1
    start = (torch.rand(len(real), device=frame_mask.device) * room).long()
    return start[:, None] + torch.arange(frames, device=frame_mask.device)


def take_frames(x: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """``x`` (B, ..., T, ...) at the (B, frames) ``index`` along time axis ``dim`` (1 or 2 of a 3-D tensor)."""
    view = [index.shape[0], 1, 1]
    view[dim] = index.shape[1]
    size = list(x.shape)
    size[dim] = index.shape[1]
    return torch.gather(x, dim, index.reshape(view).expand(size))


def take_samples(audio: torch.Tensor, index: torch.Tensor, hop: int) -> torch.Tensor:
    """The (B, frames * hop) samples of (B, samples) ``audio`` under the frame windows ``index``."""
    samples = index[:, :1] * hop + torch.arange(index.shape[1] * hop, device=audio.device)
    return torch.gather(audio, 1, samples)
