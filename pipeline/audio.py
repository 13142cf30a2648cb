"""Audio I/O: load any common format as mono float32, resample with soxr, write atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from pipeline.errors import PipelineError
from pipeline.io import atomic_path


def load_audio(path: str | Path, sample_rate: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read wav/flac/ogg/opus/mp3 (libsndfile) as float32 in [-1, 1].

    Returns ``(audio, rate)``; ``audio`` is ``(samples,)`` when ``mono`` else ``(samples, channels)``.
    With ``sample_rate`` set, the audio is resampled to it with soxr (high quality).
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError("audio file not found", path)
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise PipelineError(f"not a readable audio file ({err})", path) from err
    if audio.shape[0] == 0:
        raise PipelineError("audio file holds no samples", path)
    if mono:
        audio = audio.mean(axis=1)
    if sample_rate is not None and sample_rate != rate:
        audio = resample(audio, rate, sample_rate)
        rate = sample_rate
    return np.ascontiguousarray(audio, dtype=np.float32), int(rate)


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample along the first axis with soxr's VHQ filter (the same one librosa uses by default)."""
    if orig_rate == target_rate:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, orig_rate, target_rate, quality="VHQ").astype(np.float32, copy=False)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    """Write audio atomically; the format follows the suffix (.wav, .flac, ...)."""
    path = Path(path)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:  # never clip silently: scale into range
        audio = audio / peak
    fmt = path.suffix.lstrip(".").upper()
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio, sample_rate, format=fmt, subtype=subtype)

