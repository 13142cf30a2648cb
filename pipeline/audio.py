"""Audio I/O: load any common format as mono float32, resample with soxr, write atomically.

WAV, FLAC, Ogg/Vorbis, Opus and MP3 are read by libsndfile; AAC in M4A/MP4 (what phones and most
recording apps write), which libsndfile cannot read, by FFmpeg through PyAV.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from pipeline.errors import PipelineError
from pipeline.io import atomic_path

FFMPEG_SUFFIXES = (".m4a", ".mp4", ".aac")  # read through PyAV (FFmpeg), not libsndfile


def decode_with_ffmpeg(path: str | Path) -> tuple[np.ndarray, int]:
    """The first audio stream of ``path`` as int16 ``(samples, channels)`` and its rate, via PyAV."""
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise PipelineError("holds no audio stream", path)
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16")  # packed: one interleaved row per frame
            channels, rate, chunks = 0, 0, []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    channels, rate = out.layout.nb_channels, out.sample_rate
                    chunks.append(out.to_ndarray().reshape(-1, channels))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1, channels))
    except av.FFmpegError as err:
        raise PipelineError(f"not a readable audio file ({err})", path) from err
    if not chunks or not rate:
        raise PipelineError("audio file holds no samples", path)
    return np.concatenate(chunks).astype(np.int16, copy=False), int(rate)


SILENCE_PEAK = 1e-4  # -80 dBFS: a recording whose loudest sample is below this holds no music


def check_audio(audio: np.ndarray, rate: int, path: str | Path, min_samples: int = 1) -> None:
    """A PipelineError naming ``path`` for audio no stage can use: non-finite samples, silence (peak below
    SILENCE_PEAK, -80 dBFS), or fewer than ``min_samples`` samples (e.g. one mel frame's window)."""
    if len(audio) < min_samples:
        raise PipelineError(
            f"too short: {len(audio)} samples at {rate} Hz, at least {min_samples} needed (one analysis frame)", path
        )
    finite = np.isfinite(audio)
    if not finite.all():
        raise PipelineError(f"holds {int((~finite).sum())} non-finite (NaN or infinite) samples", path)
    if float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise PipelineError(f"silent (its peak is below {20 * np.log10(SILENCE_PEAK):.0f} dBFS)", path)


def load_audio(
    path: str | Path, sample_rate: int | None = None, mono: bool = True, validate: bool = True
) -> tuple[np.ndarray, int]:
    """Read wav/flac/ogg/opus/mp3 (libsndfile) or m4a/mp4/aac (FFmpeg) as float32 in [-1, 1].

    Returns ``(audio, rate)``; ``audio`` is ``(samples,)`` when ``mono`` else ``(samples, channels)``.
    With ``sample_rate`` set, the audio is resampled to it with soxr (high quality). Every entry point
    reads recordings here, so ``validate`` (:func:`check_audio`: non-finite samples, silence) guards them all.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError("audio file not found", path)
    if path.suffix.lower() in FFMPEG_SUFFIXES:
        pcm, rate = decode_with_ffmpeg(path)
        audio = pcm.astype(np.float32) * np.float32(1 / 32768)
    else:
        try:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            raise PipelineError(f"not a readable audio file ({err})", path) from err
    if audio.shape[0] == 0:
        raise PipelineError("audio file holds no samples", path)
    if validate:
        check_audio(audio, int(rate), path)
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
            clear_peak_timestamp(Path(tmp))


def clear_peak_timestamp(path: Path) -> None:
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
