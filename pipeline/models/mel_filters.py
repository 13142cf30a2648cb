"""The Slaney mel filterbank in plain numpy.

The same matrix as ``librosa.filters.mel(norm="slaney", htk=False)`` (a test holds them equal), which
:mod:`pipeline.mel` uses; computed here without librosa because importing librosa pulls in scipy.signal
and numba (1.3 s), and the vocoder is built on every `performer render`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_F_SP = 200.0 / 3  # Slaney: linear below 1 kHz, 200/3 Hz per mel
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: npt.ArrayLike) -> np.ndarray:
    hz = np.asarray(hz, np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def mel_to_hz(mel: npt.ArrayLike) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    log_part = _MIN_LOG_HZ * np.exp(_LOG_STEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, mel * _F_SP)


def slaney_mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters, area-normalised (Slaney), float32 and rounded
    where librosa rounds (the triangles to float32 before the normalisation): bit-identical to it."""
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)
