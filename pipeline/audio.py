"""Audio I/O: load any common format as mono float32, resample with soxr, write atomically."""

from __future__ import annotations

import struct
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
        if fmt == "WAV":
            _clear_peak_timestamp(Path(tmp))


def _clear_peak_timestamp(path: Path) -> None:
    """Zero the time stamp libsndfile writes into a float WAV's PEAK chunk.

    Without this, the same samples written twice give different bytes, so DVC sees every re-run of a
    stage as a new output and re-runs everything downstream. PEAK chunk: id, size, version, time stamp
    (4 bytes each, little-endian), then a (value, position) pair per channel.
    """
    with open(path, "r+b") as f:
        riff = f.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            return
        offset = 12
        while True:
            f.seek(offset)
            header = f.read(8)
            if len(header) < 8:
                return
            chunk, size = header[:4], struct.unpack("<I", header[4:])[0]
            if chunk == b"PEAK" and size >= 8:
                f.seek(offset + 12)  # past id, size and version
                f.write(b"\0\0\0\0")
                return
            if chunk == b"data":  # PEAK comes before the samples
                return
            offset += 8 + size + (size & 1)
