"""Realism: how far one clip's sound lies from real recordings of the instrument (lower = more real).

The audio metrics beside it compare a system's output with the clip's recording (log-mel MSE) or
with its score (transcription), and both reward clean, score-like audio: on real violin the note
metrics rank synthesis above the recording itself. Realism compares a clip with no particular
recording, but with the *distribution* of frames of real recordings (the training split's), so a
recording it has never seen scores as well as any other real recording, and a system cannot beat
it by being cleaner: a missing bow noise, flat vibrato or a too-steady envelope narrows the
clip's frame distribution, which the distance counts as much as a shift.

Per frame (high-resolution STFT, ``n_fft`` samples, Hann), over ``bands`` log-spaced bands between
``fmin`` and ``fmax``, five groups of features (``groups`` picks those scored):

* ``envelope``: the band's share of the frame's power (log): spectral envelope, level-free (a low-pass
  or another instrument moves it); ``relative``: less the clip's mean envelope (a microphone's EQ
  is not the playing; measured: it then misses a low-pass and ranks the recording behind Griffin-Lim);
* ``flatness``: geometric over arithmetic mean of the band's bins (log): the fine structure between
  partials; measured and not scored by default: it follows the notes (a four-voice chorale fills the
  gaps between partials as Griffin-Lim does);
* ``flux``: the band's log power change from the frame before: vibrato, bow changes, a room's decay;
* ``level``: the frame's power under the clip's loudest frame (dB/10): the dynamics within a clip;
* ``phase``: the band's phase acceleration (the second difference of each bin's phase over three
  frames, wrapped, magnitude-weighted; log): 0 for a steady partial wherever it lies in its bin, small
  and varied under vibrato and a bow, large where the phase was estimated (Griffin-Lim) or generated
  (a mel vocoder). It does not depend on which notes are played, only on how they were made.

Frames quieter than ``gate_db`` under the clip's loudest are left out (rests, the room's noise floor:
they would measure the recording chain, not the playing). :class:`RealismReference` standardises the
features by the reference frames' mean and deviation and keeps each reference clip's moments. A clip is
compared with the Gaussian of the ``neighbours`` reference clips nearest to it in mean envelope (the
content: register, voicing; 0 = every reference frame pooled), so an unseen piece meets reference clips
that sound like it, not the training set's average: the Frechet distance of its frames' Gaussian (mean,
covariance) to theirs (``frechet``), or its diagonal (``diagonal``), per dimension, per feature group
(``groups``: the 12 envelope bands do not outweigh the one level column, the dynamics a FluidSynth note
lacks) or over all scored dimensions (``dims``), each compressed as log(1 + d) (``log1p``: the distance
grows with the square of a shift, so without it one clip of unseen content decides a system's mean) and
averaged. docs/benchmarks.md ("Realism") has the measurements that chose these settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from pipeline.config import REALISM_GROUPS, RealismConfig
from pipeline.errors import PipelineError


class TooShortForRealism(PipelineError):
    """A clip with too few frames above the gate to be scored (a reference fit leaves such clips out)."""


GROUPS = REALISM_GROUPS  # the feature groups, in column order
PHASE_FRAMES = 3  # frames a phase acceleration spans: a frame's first two have none (no flux needs only 2)


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


def _wrap(angle: np.ndarray) -> np.ndarray:
    """``angle`` wrapped into [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def frame_features(audio: np.ndarray, sample_rate: int, config: RealismConfig, where: str = "clip") -> np.ndarray:
    """Features ``(frames, 4 * bands + 1)`` of the clip's frames louder than ``gate_db`` under its loudest
    (columns: :func:`group_slices`, every group whether scored or not). ``audio``: mono ``(samples,)`` at
    ``sample_rate``. Level-free: the same clip at any gain gives the same features."""
    x = _check_clip(audio, config, where)
    edges = _band_edges(config, sample_rate)
    frames = np.lib.stride_tricks.sliding_window_view(x, config.n_fft)[:: config.hop_length]
    spectrum = np.fft.rfft(frames * np.hanning(config.n_fft), axis=1)  # (T, bins)
    power = np.square(np.abs(spectrum))
    total = power[:, edges[0] : edges[-1]].sum(axis=1)  # (T,)
    peak = float(total.max())
    if peak <= 0:
        # no frame above any gate: a reference clip of a rest (exact zeros since rendering reads
        # FluidSynth's undithered float output) is left out like a short one
        raise TooShortForRealism("realism: audio is silent (no frames to score)", where)
    # a floor relative to the clip's loudest frame: scale-free, and log never meets an exact zero
    power = power + peak * 10 ** (-config.floor_db / 10) / config.n_fft
    band = np.stack([power[:, a:b].sum(axis=1) for a, b in pairwise(edges)], axis=1)  # (T, bands)
    log_total = np.log(band.sum(axis=1))
    envelope = np.log(band) - log_total[:, None]
    keep = log_total >= log_total.max() - config.gate_db * np.log(10) / 10
    keep[: PHASE_FRAMES - 1] = False  # no two frames before them: no phase acceleration
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
    # a steady partial advances its phase by the same angle every hop, wherever it lies in the bin: the
    # second difference is 0; Griffin-Lim's estimated and a vocoder's generated phase break that
    angle = np.angle(spectrum)
    acceleration = np.zeros_like(power)
    acceleration[PHASE_FRAMES - 1 :] = np.abs(_wrap(angle[2:] - 2 * angle[1:-1] + angle[:-2]))
    phase = np.stack(
        [
            np.log((acceleration[:, a:b] * power[:, a:b]).sum(axis=1) / power[:, a:b].sum(axis=1) + config.phase_floor)
            for a, b in pairwise(edges)
        ],
        axis=1,
    )
    return np.concatenate([envelope, flatness, flux, level, phase], axis=1)[keep]


def group_slices(bands: int) -> dict[str, slice]:
    """The columns of each of :data:`GROUPS` in :func:`frame_features`' output."""
    widths = {"envelope": bands, "flatness": bands, "flux": bands, "level": 1, "phase": bands}
    starts = np.cumsum([0, *(widths[g] for g in GROUPS)])
    return {g: slice(int(a), int(b)) for g, a, b in zip(GROUPS, starts[:-1], starts[1:], strict=True)}


def _gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(dims,)`` and covariance ``(dims, dims)`` of ``features`` ``(frames, dims)``."""
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _distance(
    mean: np.ndarray, covariance: np.ndarray, reference: np.ndarray, reference_sqrt: np.ndarray, distance: str
) -> float:
    """Distance of a standardised clip Gaussian ``(mean, covariance)``, its mean relative to the
    reference's, to the reference's (covariance ``reference``), summed over its dimensions."""
    if distance == "diagonal":  # per feature: squared mean shift + squared deviation mismatch
        std, ref_std = np.sqrt(np.diag(covariance)), np.sqrt(np.diag(reference))
        return float(np.sum(mean**2) + np.sum((std - ref_std) ** 2))
    # Frechet: ||mu||^2 + tr(C + C_ref - 2 (C_ref^1/2 C C_ref^1/2)^1/2)
    cross = np.linalg.eigvalsh(reference_sqrt @ covariance @ reference_sqrt)
    trace = np.trace(covariance) + np.trace(reference) - 2 * np.sum(np.sqrt(np.clip(cross, 0, None)))
    return float(np.sum(mean**2) + max(float(trace), 0.0))


def _columns(config: RealismConfig) -> np.ndarray:
    """The feature columns of the scored groups (``config.groups``, in :data:`GROUPS` order)."""
    slices = group_slices(config.bands)
    return np.concatenate([np.arange(slices[g].start, slices[g].stop) for g in GROUPS if g in config.groups])


@dataclass(frozen=True)
class RealismReference:
    """The frame distribution of real recordings, clip by clip: features standardised by the pooled
    frames' mean / deviation; per reference clip its frame count, sum and sum of outer products (of the
    scored columns) and its mean envelope (where it lies in content). ``score`` a clip against the
    reference clips nearest it (lower = more like the reference)."""

    config: RealismConfig
    sample_rate: int
    center: np.ndarray  # (dims,) reference frames' mean (raw features, every column)
    scale: np.ndarray  # (dims,) their deviation
    content: np.ndarray  # (clips, bands) each reference clip's mean standardised envelope
    counts: np.ndarray  # (clips,) its frames
    sums: np.ndarray  # (clips, scored) sum of its standardised frames, scored columns
    products: np.ndarray  # (clips, scored, scored) sum of their outer products
    frames: int  # reference frames in all

    @classmethod
    def fit(cls, clips: list[np.ndarray], sample_rate: int, config: RealismConfig) -> RealismReference:
        """Reference of ``clips`` (mono ``(samples,)`` each, real recordings of the *training* split, at
        ``sample_rate``): every clip's gated frames. A clip too short or too quiet to score is left out (a
        recording's last clip can be a few frames, a rest silent); other bad input (NaN) is an error."""
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
        envelope, columns = group_slices(config.bands)["envelope"], _columns(config)
        standard = [(f - center) / scale for f in features]
        return cls(
            config,
            sample_rate,
            center,
            scale,
            content=np.stack([z[:, envelope].mean(axis=0) for z in standard]),
            counts=np.array([len(z) for z in standard]),
            sums=np.stack([z[:, columns].sum(axis=0) for z in standard]),
            products=np.stack([z[:, columns].T @ z[:, columns] for z in standard]),
            frames=len(pooled),
        )

    def _blocks(self) -> list[slice]:
        """The covariance blocks (of the scored columns) the distance is taken over: one per scored
        feature group, or all as one."""
        if self.config.weighting == "dims":
            return [slice(0, self.sums.shape[1])]
        slices, blocks, start = group_slices(self.config.bands), [], 0
        for group in GROUPS:
            if group in self.config.groups:
                width = slices[group].stop - slices[group].start
                blocks.append(slice(start, start + width))
                start += width
        return blocks

    def _local(self, content: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(scored,)`` and covariance ``(scored, scored)`` of the frames of the ``neighbours``
        reference clips nearest to a clip's mean envelope ``content`` ``(bands,)`` (all: every clip)."""
        k = self.config.neighbours if 0 < self.config.neighbours < len(self.counts) else len(self.counts)
        near = np.argsort(np.sum(np.square(self.content - content), axis=1), kind="stable")[:k]
        n = float(self.counts[near].sum())
        mean = self.sums[near].sum(axis=0) / n
        covariance = (self.products[near].sum(axis=0) - n * np.outer(mean, mean)) / (n - 1)
        return mean, covariance

    def score(self, audio: np.ndarray, sample_rate: int, where: str = "clip") -> float:
        """Distance of one clip's frames (mono ``(samples,)`` at ``sample_rate``, the reference's) to the
        reference clips nearest it in content: 0 for a clip with their frame statistics, lower = more real.
        ``groups``: the mean over scored feature groups of each group's distance per dimension (a 12-band
        group does not outweigh the one level column); ``dims``: the distance over all scored features, per
        dimension; ``log1p``: each such distance as log(1 + d)."""
        if sample_rate != self.sample_rate:
            raise PipelineError(
                f"realism: clip at {sample_rate} Hz, the reference was fitted at {self.sample_rate} Hz", where
            )
        z = (frame_features(audio, sample_rate, self.config, where) - self.center) / self.scale
        local_mean, local = self._local(z[:, group_slices(self.config.bands)["envelope"]].mean(axis=0))
        mean, covariance = _gaussian(z[:, _columns(self.config)])
        parts = []
        for block in self._blocks():
            reference = local[block, block]
            distance = _distance(
                mean[block] - local_mean[block],
                covariance[block, block],
                reference,
                _sqrt_psd(reference),
                self.config.distance,
            ) / len(mean[block])
            parts.append(float(np.log1p(distance)) if self.config.compress == "log1p" else distance)
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
