"""Realism: how far one clip's sound lies from real recordings of the instrument (lower = more real).

The audio metrics beside it compare a system's output with the clip's recording (log-mel MSE) or
with its score (transcription), and both reward clean, score-like audio: on real violin the note
metrics rank synthesis above the recording itself. Realism compares a clip with no particular
recording, but with the *distribution* of frames of real recordings (the training split's), so a
recording it has never seen scores as well as any other real recording, and a system cannot beat
it by being cleaner: a missing bow noise, flat vibrato or a too-steady envelope narrows the
clip's frame distribution, which the distance counts as much as a shift.

Per frame (high-resolution STFT, ``n_fft`` samples, Hann), over ``bands`` log-spaced bands between
``fmin`` and ``fmax``:

* ``envelope``: the band's share of the frame's power (log): spectral envelope, level-free (a low-pass
  or another instrument moves it); ``relative``: less the clip's mean envelope (a microphone's EQ
  is not the playing; measured: it then misses a low-pass and ranks the recording behind Griffin-Lim);
* ``flatness``: geometric over arithmetic mean of the band's bins (log): the fine structure between
  partials, which bow noise fills, which a mel-domain vocoder or Griffin-Lim smears and which additive
  sines leave empty;
* ``flux``: the band's log power change from the frame before: vibrato, bow changes, a room's decay;
* ``level``: the frame's power under the clip's loudest frame (dB/10): the dynamics within a clip.

Frames quieter than ``gate_db`` under the clip's loudest are left out (rests, the room's noise floor:
they would measure the recording chain, not the playing). :class:`RealismReference` standardises the
features by the reference frames' mean and deviation; a clip's score is the Frechet distance of its
frames' Gaussian (mean, covariance) to the reference frames' Gaussian (``frechet``), or its diagonal
(per-feature mean and deviation: ``diagonal``), per dimension and averaged over the four groups
(``groups``: the 12 envelope bands do not outweigh the one level column, the dynamics a FluidSynth
note lacks) or over all dimensions (``dims``). docs/benchmarks.md ("Realism") has the measurements
that chose these settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from pipeline.config import RealismConfig
from pipeline.errors import PipelineError


class TooShortForRealism(PipelineError):
    """A clip with too few frames above the gate to be scored (a reference fit leaves such clips out)."""


GROUPS = ("envelope", "flatness", "flux", "level")  # the feature groups, in column order


def _check_clip(audio: np.ndarray, config: RealismConfig, where: str) -> np.ndarray:
    """``audio`` as float64 ``(samples,)``, or a one-line PipelineError naming ``where``."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise PipelineError(f"realism needs mono audio (samples,), not shape {audio.shape}", where)
    if len(audio) < config.n_fft + config.min_frames * config.hop_length:
        raise TooShortForRealism(
            f"too short for realism: {len(audio)} samples, at least "
            f"{config.n_fft + config.min_frames * config.hop_length} needed ({config.min_frames} frames)",
            where,
        )
    if not np.isfinite(audio).all():
        raise PipelineError("realism: audio holds NaN or infinite samples", where)
    return audio.astype(np.float64)


def _band_edges(config: RealismConfig, sample_rate: int) -> np.ndarray:
    """STFT bin index of each band edge ``(bands + 1,)``, log-spaced from fmin to fmax (each band >= 2 bins)."""
    if config.fmax > sample_rate / 2:
        raise PipelineError(f"evaluate.realism.fmax ({config.fmax:g}) is above the Nyquist rate of {sample_rate} Hz")
    hz = np.geomspace(config.fmin, config.fmax, config.bands + 1)
    edges = np.round(hz * config.n_fft / sample_rate).astype(np.int64)
    if np.any(np.diff(edges) < 2):
        raise PipelineError(
            f"evaluate.realism: {config.bands} bands between {config.fmin:g} and {config.fmax:g} Hz leave a band "
            f"under 2 bins of n_fft {config.n_fft}"
        )
    return edges


def frame_features(audio: np.ndarray, sample_rate: int, config: RealismConfig, where: str = "clip") -> np.ndarray:
    """Features ``(frames, 3 * bands + 1)`` of the clip's frames louder than ``gate_db`` under its loudest
    (columns: :func:`group_slices`). ``audio``: mono ``(samples,)`` at ``sample_rate``. Level-free: the
    same clip at any gain gives the same features."""
    x = _check_clip(audio, config, where)
    edges = _band_edges(config, sample_rate)
    frames = np.lib.stride_tricks.sliding_window_view(x, config.n_fft)[:: config.hop_length]
    power = np.square(np.abs(np.fft.rfft(frames * np.hanning(config.n_fft), axis=1)))  # (T, bins)
    total = power[:, edges[0] : edges[-1]].sum(axis=1)  # (T,)
    peak = float(total.max())
    if peak <= 0:
        raise PipelineError("realism: audio is silent", where)
    # a floor relative to the clip's loudest frame: scale-free, and log never meets an exact zero
    power = power + peak * 10 ** (-config.floor_db / 10) / config.n_fft
    band = np.stack([power[:, a:b].sum(axis=1) for a, b in pairwise(edges)], axis=1)  # (T, bands)
    log_total = np.log(band.sum(axis=1))
    envelope = np.log(band) - log_total[:, None]
    keep = log_total >= log_total.max() - config.gate_db * np.log(10) / 10
    keep[0] = False  # no frame before it: no flux
    if int(keep.sum()) < config.min_frames:
        raise TooShortForRealism(
            f"realism: only {int(keep.sum())} frames within {config.gate_db:g} dB of the loudest, "
            f"at least {config.min_frames} needed",
            where,
        )
    if config.envelope == "relative":  # the clip's static EQ (microphone, room) is not the playing
        envelope = envelope - envelope[keep].mean(axis=0)
    flatness = np.stack(
        [np.log(power[:, a:b]).mean(axis=1) - np.log(power[:, a:b].mean(axis=1)) for a, b in pairwise(edges)],
        axis=1,
    )
    flux = np.diff(np.log(band), axis=0, prepend=np.log(band[:1]))
    level = (log_total - log_total.max())[:, None] / np.log(10)  # bels under the loudest frame
    return np.concatenate([envelope, flatness, flux, level], axis=1)[keep]


def group_slices(bands: int) -> list[slice]:
    """The columns of each of :data:`GROUPS` in :func:`frame_features`' output."""
    return [slice(0, bands), slice(bands, 2 * bands), slice(2 * bands, 3 * bands), slice(3 * bands, 3 * bands + 1)]


def _gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _distance(
    mean: np.ndarray, covariance: np.ndarray, reference: np.ndarray, reference_sqrt: np.ndarray, distance: str
) -> float:
    """Distance of a standardised clip Gaussian ``(mean, covariance)`` to the reference's (mean 0), summed
    over its dimensions."""
    if distance == "diagonal":  # per feature: squared mean shift + squared deviation mismatch
        std, ref_std = np.sqrt(np.diag(covariance)), np.sqrt(np.diag(reference))
        return float(np.sum(mean**2) + np.sum((std - ref_std) ** 2))
    # Frechet: ||mu||^2 + tr(C + C_ref - 2 (C_ref^1/2 C C_ref^1/2)^1/2)
    cross = np.linalg.eigvalsh(reference_sqrt @ covariance @ reference_sqrt)
    trace = np.trace(covariance) + np.trace(reference) - 2 * np.sum(np.sqrt(np.clip(cross, 0, None)))
    return float(np.sum(mean**2) + max(float(trace), 0.0))


@dataclass(frozen=True)
class RealismReference:
    """The frame distribution of real recordings: features standardised by its mean / deviation, and
    its Gaussian in that space. ``score`` a clip against it (lower = more like the reference)."""

    config: RealismConfig
    sample_rate: int
    center: np.ndarray  # (dims,) reference frames' mean (raw features)
    scale: np.ndarray  # (dims,) their deviation
    covariance: np.ndarray  # (dims, dims) of the standardised reference frames
    frames: int  # reference frames the Gaussian was fitted on

    @classmethod
    def fit(cls, clips: list[np.ndarray], sample_rate: int, config: RealismConfig) -> RealismReference:
        """Reference of ``clips`` (mono ``(samples,)`` each, real recordings of the *training* split, at
        ``sample_rate``): every clip's gated frames pooled. A clip too short to score is left out (a
        recording's last clip can be a few frames); other bad input (NaN, silence) is an error."""
        if not clips:
            raise PipelineError("realism: no reference clips to fit on (the training split's recordings)")
        features = []
        for i, clip in enumerate(clips):
            try:
                features.append(frame_features(clip, sample_rate, config, f"reference clip {i}"))
            except TooShortForRealism:  # a recording's last, short clip: it has no frames to spare
                continue
        if not features:
            raise PipelineError(f"realism: none of the {len(clips)} reference clips is long enough to fit on")
        pooled = np.concatenate(features)
        center = pooled.mean(axis=0)
        scale = np.maximum(pooled.std(axis=0), np.finfo(np.float64).eps)  # a constant feature: no division by 0
        _, covariance = _gaussian((pooled - center) / scale)
        return cls(config, sample_rate, center, scale, covariance, len(pooled))

    def _blocks(self) -> list[slice]:
        """The covariance blocks the distance is taken over: one per feature group, or all as one."""
        if self.config.weighting == "groups":
            return group_slices(self.config.bands)
        return [slice(0, len(self.center))]

    def score(self, audio: np.ndarray, sample_rate: int, where: str = "clip") -> float:
        """Distance of one clip's frames (mono ``(samples,)`` at ``sample_rate``, the reference's) to the
        reference: 0 for a clip with the reference's frame statistics, lower = more real. ``groups``: the
        mean over feature groups of each group's distance per dimension (a 12-band group does not outweigh
        the one level column); ``dims``: the distance over all features, per dimension."""
        if sample_rate != self.sample_rate:
            raise PipelineError(
                f"realism: clip at {sample_rate} Hz, the reference was fitted at {self.sample_rate} Hz", where
            )
        z = (frame_features(audio, sample_rate, self.config, where) - self.center) / self.scale
        mean, covariance = _gaussian(z)
        parts = []
        for block in self._blocks():
            reference = self.covariance[block, block]
            distance = _distance(
                mean[block], covariance[block, block], reference, _sqrt_psd(reference), self.config.distance
            )
            parts.append(distance / len(mean[block]))
        return float(np.mean(parts))


def realism_scores(
    reference_clips: list[np.ndarray],
    systems: dict[str, list[np.ndarray]],
    *,
    sample_rate: int,
    config: RealismConfig,
) -> dict[str, list[float | None]]:
    """Per-clip realism of every system's clips: ``{system: [score per clip]}`` (lower = more real), the
    reference fitted once on ``reference_clips`` (real recordings of the training split, never the test
    clips). Every clip mono ``(samples,)`` at ``sample_rate``. A clip too short to score (a recording's last
    few frames) is None for every system alike; any other bad clip is a PipelineError naming it."""
    reference = RealismReference.fit(reference_clips, sample_rate, config)
    out: dict[str, list[float | None]] = {}
    for name, clips in systems.items():
        out[name] = []
        for i, clip in enumerate(clips):
            try:
                out[name].append(reference.score(clip, sample_rate, f"system {name!r}, clip {i}"))
            except TooShortForRealism:
                out[name].append(None)
    return out
