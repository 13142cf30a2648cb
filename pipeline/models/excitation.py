"""Score-informed source excitation for the vocoder (neural source-filter, as NSF-HiFiGAN does for
singing, with the pitches taken from the score instead of an f0 tracker).

A HiFi-GAN trained for a few thousand CPU steps learns the spectral envelope long before it learns
to make a steady periodic waveform: its output is pitch-smeared. Giving it a periodic source at the
right pitch leaves it only the filter to learn. Each sounding note contributes its own
band-limited harmonic tone (a sawtooth-like ``sum_k sin(k phi) / k`` below Nyquist) for the frames
the alignment places it in, so chords are sums of tones, the polyphonic mixer's idea applied to the
excitation. Vibrato and expressive pitch are not in the score: the generator takes them from the
mel it is conditioned on.

Training takes the notes from the recording's alignment; `performer render` from the alignment
model; the evaluate stage from the clip's notes. All three call :func:`harmonic_excitation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.errors import PipelineError

FADE_SECONDS = 0.005  # raised-cosine fade at note edges: a hard edge is a click the generator would copy


def midi_to_hz(pitch: np.ndarray, tuning_cents: float = 0.0) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch, np.float64) + tuning_cents / 100.0 - 69.0) / 12.0)


def harmonic_excitation(
    pitch: np.ndarray,
    onset_frame: np.ndarray,
    offset_frame: np.ndarray,
    frames: int,
    hop_length: int,
    sample_rate: int,
    harmonics: int = 8,
    amplitude: float = 0.1,
    tuning_cents: float = 0.0,
    decay: float = 1.0,
) -> np.ndarray:
    """Excitation ``(frames * hop_length,)`` float32: the sum of one harmonic tone per note.

    ``pitch`` (notes,) MIDI numbers 0-127; ``onset_frame`` / ``offset_frame`` (notes,) the frames each
    note sounds in (offset exclusive), clipped to ``[0, frames]``. Each tone has ``harmonics``
    partials (0: every partial below Nyquist; always fewer where they would pass it) with amplitudes
    ``amplitude / k ** decay`` (``decay`` 1: sawtooth-like; 0: a flat, pulse-train-like spectrum).
    """
    pitch = np.asarray(pitch)
    onset, offset = np.asarray(onset_frame, np.int64), np.asarray(offset_frame, np.int64)
    if not (len(pitch) == len(onset) == len(offset)):
        raise PipelineError(f"excitation: {len(pitch)} pitches, {len(onset)} onsets and {len(offset)} offsets")
    if len(pitch) and (not np.isfinite(pitch.astype(np.float64)).all() or pitch.min() < 0 or pitch.max() > 127):
        raise PipelineError("excitation: note pitches must be MIDI numbers 0-127")
    out = np.zeros(frames * hop_length, np.float64)
    fade = max(1, int(FADE_SECONDS * sample_rate))
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    nyquist = sample_rate / 2.0
    for f0, on, off in zip(midi_to_hz(pitch, tuning_cents), onset, offset):
        start, stop = max(0, int(on)) * hop_length, min(frames, int(off)) * hop_length
        if stop <= start:
            continue
        t = np.arange(stop - start) / sample_rate
        phase = 2.0 * np.pi * f0 * t
        below = max(0, int(np.ceil(nyquist / f0)) - 1)  # partials strictly below Nyquist
        count = below if harmonics <= 0 else min(harmonics, below)
        tone = _partials(phase, count, decay)
        n = min(fade, len(tone) // 2)
        tone[:n] *= ramp[:n]
        tone[len(tone) - n :] *= ramp[:n][::-1]
        out[start:stop] += amplitude * tone
    return out.astype(np.float32)


def _partials(phase: np.ndarray, count: int, decay: float) -> np.ndarray:
    """``sum_{k=1..count} sin(k phase) / k ** decay``."""
    if count <= 0:
        return np.zeros_like(phase)
    if decay == 0.0:
        # closed form of the flat sum (Dirichlet kernel): three sines instead of ``count``
        half = np.sin(phase / 2.0)
        safe = np.where(np.abs(half) < 1e-9, 1.0, half)
        return np.where(
            np.abs(half) < 1e-9, 0.0, np.sin(count * phase / 2.0) * np.sin((count + 1) * phase / 2.0) / safe
        )
    tone = np.zeros_like(phase)
    for k in range(1, count + 1):
        tone += np.sin(k * phase) / k**decay
    return tone


NOISE_SEED = 0  # the source-filter vocoder's noise channel is a fixed sequence: the same notes give the same bytes


def vocoder_source(
    kind: str,
    hparams: Mapping[str, Any],
    hop_length: int,
    pitch: np.ndarray,
    onset_frame: np.ndarray,
    offset_frame: np.ndarray,
    frames: int,
    sample_rate: int,
    tuning_cents: float = 0.0,
) -> np.ndarray | None:
    """The source a vocoder of ``kind`` (``pipeline.models.vocoders``) with constructor arguments
    ``hparams`` was trained with, for notes sounding in ``frames`` mel frames; the one definition its
    ``make_source`` and the torch-free renderer (:mod:`pipeline.inference.runtime.onnx_models`) both use.

    * ``source_filter``: ``(2, frames * hop_length)`` float32, the notes' harmonic tones (every partial
      below Nyquist, flat) and a fixed white noise;
    * ``hifigan`` with ``excitation``: ``(frames * hop_length,)`` float32, the notes' harmonic tones;
    * ``hifigan`` without: None (a mel-only vocoder)."""
    flat = kind == "source_filter"  # every partial below Nyquist, equal amplitudes; HiFi-GAN's: a few, 1/k
    if not flat and not hparams.get("excitation", False):
        return None
    harmonic = harmonic_excitation(
        pitch,
        onset_frame,
        offset_frame,
        frames,
        hop_length,
        sample_rate,
        harmonics=0 if flat else hparams["excitation_harmonics"],
        amplitude=hparams["excitation_amplitude"],
        tuning_cents=tuning_cents,
        decay=0.0 if flat else 1.0,
    )
    if not flat:
        return harmonic
    noise = np.random.default_rng(NOISE_SEED).standard_normal(len(harmonic))
    return np.stack([harmonic, (hparams["noise_amplitude"] * noise).astype(np.float32)])


class SourceMaker:
    """``make_source`` for a vocoder, torch model or exported network alike: the one call of
    :func:`vocoder_source` with its ``source_kind``, ``hparams`` and ``hop_length``."""

    source_kind: str
    hparams: Mapping[str, Any]
    hop_length: int

    def make_source(
        self, pitch, onset_frame, offset_frame, frames: int, sample_rate: int, tuning_cents: float = 0.0
    ) -> np.ndarray | None:
        """The source it was trained with for notes sounding in ``frames`` mel frames (see
        :func:`vocoder_source`); None for a mel-only vocoder."""
        return vocoder_source(
            self.source_kind,
            self.hparams,
            self.hop_length,
            pitch,
            onset_frame,
            offset_frame,
            frames,
            sample_rate,
            tuning_cents,
        )
