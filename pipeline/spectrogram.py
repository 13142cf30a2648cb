"""Linear power spectrogram on the mel recipe's frames, its log-mel, and Griffin-Lim inversion.

PerformanceNet (the second baseline) predicts a linear spectrogram instead of a mel. To score it on
the same frames and the same metric as every other system, its spectrogram is framed exactly like
:class:`pipeline.mel.LogMelSpectrogram` (reflect pad ``(n_fft - hop) / 2``, ``center=False``: ``n``
samples give ``n // hop`` frames), and :func:`log_mel_of_power` turns it into the project's log-mel
with the same Slaney basis and clamp (tests check that the two paths agree).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.config import MelConfig
from pipeline.mel import _mel_basis, recipe_stft


class PowerSpectrogram(nn.Module):
    """Waveform ``(B, samples)`` or ``(samples,)`` -> ``|STFT|^2`` ``(B, n_fft // 2 + 1, samples // hop)``."""

    window: torch.Tensor  # buffer (register_buffer in __init__)

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        self.config = config
        if (self.config.n_fft - self.config.hop_length) % 2:
            raise ValueError("n_fft - hop_length must be even for symmetric padding")
        self.register_buffer("window", torch.hann_window(self.config.win_length), persistent=False)

    @property
    def bins(self) -> int:
        return self.config.n_fft // 2 + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        c = self.config
        squeeze = audio.dim() == 1
        if squeeze:
            audio = audio.unsqueeze(0)
        spec = recipe_stft(audio, c, self.window)
        power = spec.real.square() + spec.imag.square()
        return power[0] if squeeze else power


def log_mel_of_power(power: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """The project's log-mel ``(..., n_mels, T)`` of a power spectrogram ``(..., bins, T)``."""
    c = config
    basis = torch.from_numpy(_mel_basis(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax)).to(power)
    magnitude = torch.sqrt(power.clamp(min=0) + 1e-9)
    return torch.log(torch.clamp(basis @ magnitude, min=c.clamp))


def griffin_lim(power: np.ndarray, config: MelConfig, iterations: int = 32, seed: int = 0) -> np.ndarray:
    """Waveform ``(T * hop,)`` of a power spectrogram ``(bins, T)`` framed like :class:`PowerSpectrogram`.

    librosa centres frame ``t`` on sample ``t * hop``; ours is centred on ``t * hop + hop / 2``, so the
    estimate is shifted by half a hop to line up with the recording.
    """
    import librosa

    c = config
    frames = power.shape[1]
    audio = librosa.griffinlim(
        np.sqrt(np.maximum(power, 0.0)).astype(np.float32),
        n_iter=iterations,
        hop_length=c.hop_length,
        win_length=c.win_length,
        n_fft=c.n_fft,
        center=True,
        random_state=seed,
    )  # (frames - 1) * hop samples
    shift = c.hop_length // 2
    out = np.zeros(frames * c.hop_length, np.float32)
    piece = audio[: len(out) - shift]
    out[shift : shift + len(piece)] = piece
    return out


def griffin_lim_from_mel(mel: np.ndarray, config: MelConfig, iterations: int = 32, seed: int = 0) -> np.ndarray:
    """Waveform ``(T * hop,)`` of a log-mel ``(n_mels, T)`` without a vocoder: the mel's magnitudes are
    mapped back to linear-frequency bins (non-negative least squares against the same Slaney filters)
    and Griffin-Lim finds a phase. The floor a trained vocoder has to beat."""
    import librosa

    c = config
    magnitude = librosa.feature.inverse.mel_to_stft(
        np.exp(np.asarray(mel, np.float64)).astype(np.float32),
        sr=c.sample_rate,
        n_fft=c.n_fft,
        power=1.0,
        norm="slaney",
        fmin=c.fmin,
        fmax=c.fmax,
    )
    return griffin_lim(np.square(magnitude), c, iterations, seed)
