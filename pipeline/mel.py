"""The one log-mel recipe of the project (HiFi-GAN's; params.yaml's ``mel`` group, docs/data-formats.md).

Every stage (features, training targets, vocoder input, evaluation) calls this module,
so a mel computed anywhere matches a mel computed anywhere else, on CPU or GPU.
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np
import torch
from torch import nn

from pipeline.config import MelConfig


@lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    # Keyword arguments only: positional librosa.filters.mel calls broke in librosa 0.10.
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm="slaney")


class LogMelSpectrogram(nn.Module):
    """Waveform ``(batch, samples)`` or ``(samples,)`` -> log-mel ``(batch, n_mels, samples // hop)``.

    Reflect-pads ``(n_fft - hop) / 2`` on each side and uses ``center=False`` so a clip of
    ``n`` samples gives exactly ``n // hop`` frames, aligned with the vocoder's upsampling.
    """

    mel_basis: torch.Tensor  # buffers (register_buffer in __init__)
    window: torch.Tensor

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        self.config = config
        c = self.config
        if (c.n_fft - c.hop_length) % 2:
            raise ValueError("n_fft - hop_length must be even for symmetric padding")
        basis = _mel_basis(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax)
        self.register_buffer("mel_basis", torch.from_numpy(basis).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(c.win_length), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        c = self.config
        squeeze = audio.dim() == 1
        if squeeze:
            audio = audio.unsqueeze(0)
        pad = (c.n_fft - c.hop_length) // 2
        x = torch.nn.functional.pad(audio.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            x.float(),
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length,
            window=self.window,
            center=False,
            return_complex=True,
        )
        magnitude = torch.sqrt(spec.real.square() + spec.imag.square() + 1e-9)
        mel = torch.log(torch.clamp(self.mel_basis @ magnitude, min=c.clamp))
        return mel[0] if squeeze else mel


def log_mel(audio: np.ndarray, config: MelConfig, device: str | torch.device = "cpu") -> np.ndarray:
    """NumPy convenience wrapper: mono ``(samples,)`` -> ``(n_mels, samples // hop)`` float32."""
    module = LogMelSpectrogram(config).to(device)
    with torch.no_grad():
        mel = module(torch.as_tensor(np.ascontiguousarray(audio), dtype=torch.float32, device=device))
    return mel.cpu().numpy()
