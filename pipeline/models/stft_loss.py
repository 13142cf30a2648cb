"""The multi-resolution STFT loss (Parallel WaveGAN's auxiliary loss) for the vocoder."""

from __future__ import annotations

import torch

STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop), Hann window of n_fft


def multi_resolution_stft_loss(
    real: torch.Tensor, fake: torch.Tensor, resolutions: tuple[tuple[int, int], ...] = STFT_RESOLUTIONS
) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + mean |log |X| - log |Y||, for ``(B, samples)``
    signals (Parallel WaveGAN's auxiliary loss; the evaluate stage's MR-STFT distance is the same
    quantity, so a vocoder trained on it is trained on what it is scored by)."""
    real, fake = real.reshape(real.shape[0], -1).float(), fake.reshape(fake.shape[0], -1).float()
    total = real.new_zeros(())
    for n_fft, hop in resolutions:
        window = torch.hann_window(n_fft, device=real.device)
        spectra = [torch.stft(x, n_fft, hop, n_fft, window, return_complex=True).abs() for x in (real, fake)]
        target, estimate = spectra
        convergence = torch.linalg.vector_norm(target - estimate) / torch.linalg.vector_norm(target).clamp(min=1e-7)
        log_distance = (torch.log(estimate.clamp(min=1e-7)) - torch.log(target.clamp(min=1e-7))).abs().mean()
        total = total + convergence + log_distance
    return total / len(resolutions)
