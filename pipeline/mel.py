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
from pipeline.progress import progress_bar


@lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    # Keyword arguments only: positional librosa.filters.mel calls broke in librosa 0.10.
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm="slaney")


def recipe_stft(audio: torch.Tensor, config: MelConfig, window: torch.Tensor) -> torch.Tensor:
    """Waveform ``(batch, samples)`` -> complex STFT ``(batch, n_fft // 2 + 1, samples // hop)`` on the
    recipe's frames: reflect-padded ``(n_fft - hop) / 2`` on each side, ``center=False``, in float32.
    The one framing of the log-mel and of the power spectrogram (pipeline.spectrogram)."""
    c = config
    pad = (c.n_fft - c.hop_length) // 2
    x = torch.nn.functional.pad(audio.float().unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    return torch.stft(
        x,
        n_fft=c.n_fft,
        hop_length=c.hop_length,
        win_length=c.win_length,
        window=window,
        center=False,
        return_complex=True,
    )


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
        spec = recipe_stft(audio.unsqueeze(0) if squeeze else audio, c, self.window)
        magnitude = torch.sqrt(spec.real.square() + spec.imag.square() + 1e-9)
        mel = torch.log(torch.clamp(self.mel_basis @ magnitude, min=c.clamp))
        return mel[0] if squeeze else mel


def log_mel(audio: np.ndarray, config: MelConfig, device: str | torch.device = "cpu") -> np.ndarray:
    """NumPy convenience wrapper: mono ``(samples,)`` -> ``(n_mels, samples // hop)`` float32."""
    module = LogMelSpectrogram(config).to(device)
    with torch.no_grad():
        mel = module(torch.as_tensor(np.ascontiguousarray(audio), dtype=torch.float32, device=device))
    return mel.cpu().numpy()


MEL_CHUNK_FRAMES = 8192  # frames per chunk of log_mel_in_chunks (~2 minutes at 16 kHz, hop 256: ~40 MB of STFT)


def log_mel_in_chunks(
    signal: np.ndarray, config: MelConfig, chunk_frames: int = MEL_CHUNK_FRAMES, progress: str | None = None
) -> np.ndarray:
    """:func:`log_mel` of ``signal``, the same values (tested bit for bit), ``chunk_frames`` frames
    at a time with a progress bar: memory bounded by a chunk (the whole STFT of two hours is ~8 GB).

    Each chunk is ``log_mel`` of a slice of the recording that reaches ``margin`` whole frames beyond the
    chunk on both sides, further than a frame reads past its hop (the recipe's (n_fft - hop) / 2 of
    padding), and the margin's frames are dropped; at the recording's ends the slice ends there, so the
    recipe's own reflect padding applies. No chunk is shorter than half ``chunk_frames``: a matrix product
    over a frame or two takes another BLAS kernel, whose sums differ in the last bit."""
    hop = config.hop_length
    n_frames = len(signal) // hop
    margin = -(-((config.n_fft - hop) // 2) // hop)  # frames: ceil(padding / hop)
    starts = list(range(0, n_frames, chunk_frames))
    if len(starts) > 1 and n_frames - starts[-1] < chunk_frames // 2:
        starts.pop()  # the last chunk takes in a short rest
    out = np.empty((config.n_mels, n_frames), np.float32)
    with progress_bar(n_frames, progress or "", "frames", disable=progress is None) as bar:
        for start, stop in zip(starts, [*starts[1:], n_frames]):
            first = max(0, start - margin)
            end = len(signal) if stop + margin >= n_frames else (stop + margin) * hop
            out[:, start:stop] = log_mel(signal[first * hop : end], config)[:, start - first : stop - first]
            bar.update(stop - start)
    return out
