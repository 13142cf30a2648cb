"""Objective metrics of the evaluate stage. Audio is mono float32 at the mel recipe's rate unless stated.

* :func:`mel_mse`, :func:`audio_mel_mse`: the paper's Table 2 metric (log-mel MSE), on a mel
  prediction or on the mel of a waveform (the project's one recipe, pipeline.mel);
* :func:`multi_resolution_stft_distance`: spectral convergence + log-magnitude L1 at three
  resolutions (the Parallel WaveGAN / HiFi-GAN family's multi-resolution STFT distance);
* note, multi-pitch and f0 metrics of transcribed audio live in :mod:`pipeline.evaluation.transcription`
  and :mod:`pipeline.evaluation.pitch`; onset and duration errors of a timing prediction in
  :mod:`pipeline.evaluation.timing` (per note) and :func:`pipeline.evaluation.summary.timing_summary`.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from pipeline.config import MelConfig


def mel_mse(predicted: np.ndarray, target: np.ndarray) -> float:
    """MSE of two log-mels ``(n_mels, T)``, over the frames both have."""
    predicted, target = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
    if predicted.shape[0] != target.shape[0]:
        raise ValueError(f"mel bins differ: {predicted.shape[0]} vs {target.shape[0]}")
    frames = min(predicted.shape[1], target.shape[1])
    if frames == 0:
        return float("nan")
    return float(np.mean((predicted[:, :frames] - target[:, :frames]) ** 2))


def audio_mel_mse(audio: np.ndarray, reference_audio: np.ndarray, config: MelConfig) -> float:
    """Log-mel MSE between the mels of two waveforms (the end-to-end Table 2 score of a system)."""
    from pipeline.mel import log_mel

    return mel_mse(
        log_mel(np.asarray(audio, np.float32), config), log_mel(np.asarray(reference_audio, np.float32), config)
    )


def multi_resolution_stft_distance(
    audio: np.ndarray,
    reference: np.ndarray,
    resolutions: tuple[tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048)),
) -> float:
    """Mean over (n_fft, hop, win) resolutions of spectral convergence + mean |log |X| - log |Y||.

    0 for identical signals; grows with any difference in magnitude spectra (shifts, noise, timbre).
    """
    import librosa

    n = min(len(audio), len(reference))
    x, y = np.asarray(audio[:n], np.float32), np.asarray(reference[:n], np.float32)
    total = 0.0
    for n_fft, hop, win in resolutions:
        sx = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, center=True))
        sy = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, center=True))
        convergence = np.linalg.norm(sy - sx) / max(cast(float, np.linalg.norm(sy)), 1e-7)
        log_distance = np.mean(np.abs(np.log(np.maximum(sx, 1e-7)) - np.log(np.maximum(sy, 1e-7))))
        total += convergence + log_distance
    return float(total / len(resolutions))
