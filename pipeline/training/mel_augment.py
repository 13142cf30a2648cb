"""Vague mels for vocoder training: what a synthesis model gives the vocoder is not a recording's sharp
mel but a smoother, noisier estimate of it (its MSE-trained prediction is close to a conditional mean).
A vocoder that only ever saw sharp mels copies that vagueness into the sound (pitch smeared into
noise); trained on some blurred and noisy mels as well, it learns to take the fine structure from the
score's source where the mel no longer shows it. Uses torch's global RNG (checkpointed by the trainer,
so a resumed run draws what an uninterrupted one would)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

RADIUS = 6  # Gaussian kernels of 13 taps


def _gaussian(sigma: float, device: torch.device) -> torch.Tensor:
    x = torch.arange(-RADIUS, RADIUS + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def vague_mel(
    mel: torch.Tensor,
    probability: float,
    max_band_sigma: float = 2.5,
    max_frame_sigma: float = 2.0,
    max_noise: float = 0.4,
) -> torch.Tensor:
    """``(B, n_mels, T)`` log-mels, each with ``probability`` blurred across bands (Gaussian, sigma
    0.5 to ``max_band_sigma`` bands) and frames (0.3 to ``max_frame_sigma`` frames) plus Gaussian noise
    (sd up to ``max_noise`` nats); the others unchanged."""
    out = mel.clone()
    for i in range(mel.shape[0]):
        if torch.rand(()).item() >= probability:
            continue
        band_sigma = 0.5 + (max_band_sigma - 0.5) * torch.rand(()).item()
        frame_sigma = 0.3 + (max_frame_sigma - 0.3) * torch.rand(()).item()
        noise = max_noise * torch.rand(()).item()
        x = mel[i][None, None].float()  # (1, 1, n_mels, T)
        x = F.conv2d(
            F.pad(x, (0, 0, RADIUS, RADIUS), mode="replicate"), _gaussian(band_sigma, mel.device).view(1, 1, -1, 1)
        )
        x = F.conv2d(
            F.pad(x, (RADIUS, RADIUS, 0, 0), mode="replicate"), _gaussian(frame_sigma, mel.device).view(1, 1, 1, -1)
        )
        out[i] = (x[0, 0] + noise * torch.randn(mel.shape[1:], device=mel.device)).to(mel.dtype)
    return out
