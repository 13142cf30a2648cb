"""Confidence intervals for the evaluation table: clip-level bootstrap, plain and paired.

The unit of resampling is the test clip: clips of one recording share a performer and a piece, but
clips are what every system is scored on, and the paired bootstrap resamples the *same* clips for
both systems, which removes the clip-to-clip variance that both share (the reason a paired
difference can be significant while the two intervals overlap).

A metric may pool several observations per clip (timing errors average over notes): pass each
clip's sum as ``values`` and its count as ``weights``; the statistic is then sum / count over the
resampled clips, the same pooled mean the table shows.

Percentile intervals from ``resamples`` draws of a ``numpy.random.Generator`` seeded per cell
(seed, system, metric), so a cell's interval does not depend on which other cells were computed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    mean: float  # the statistic on all clips
    low: float
    high: float
    n: int  # clips

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)


def cell_rng(seed: int, *names: str) -> np.random.Generator:
    """A generator of its own for one table cell (crc32: stable across machines and processes)."""
    return np.random.default_rng([seed, zlib.crc32("\x1f".join(names).encode())])


def _pooled(values: np.ndarray, weights: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return values[idx].sum(axis=-1) / weights[idx].sum(axis=-1)


def bootstrap_mean(
    values, weights=None, resamples: int = 1000, confidence: float = 0.95, rng: np.random.Generator | None = None
) -> Interval:
    """Mean of ``values`` (or pooled sum/count with ``weights``) and its percentile bootstrap interval."""
    v = np.asarray(values, np.float64)
    w = np.ones_like(v) if weights is None else np.asarray(weights, np.float64)
    if v.shape != w.shape or v.ndim != 1:
        raise ValueError(f"values and weights must be 1-d of one length, not {v.shape} and {w.shape}")
    keep = np.isfinite(v) & (w > 0)
    v, w = v[keep], w[keep]
    n = len(v)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(v.sum() / w.sum())
    per_clip = v / w
    if n == 1 or resamples <= 0 or per_clip.min() == per_clip.max():  # nothing varies: zero width
        return Interval(mean, mean, mean, n)
    rng = rng or np.random.default_rng(0)
    stats = _pooled(v, w, rng.integers(0, n, size=(resamples, n)))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Interval(mean, float(min(low, mean)), float(max(high, mean)), n)


def paired_difference(
    a: dict[str, float],
    b: dict[str, float],
    a_weights: dict[str, float] | None = None,
    b_weights: dict[str, float] | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
) -> Interval:
    """Statistic of ``a`` minus statistic of ``b`` on the clips both have, with a paired bootstrap
    interval (each draw resamples one set of clips and scores both systems on it).

    ``a`` and ``b`` map clip id -> value (a per-clip sum where weights are given)."""
    clips = sorted(k for k in set(a) & set(b) if np.isfinite(a[k]) and np.isfinite(b[k]))
    n = len(clips)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    va, vb = (np.array([d[k] for k in clips], np.float64) for d in (a, b))
    wa = np.array([(a_weights or {}).get(k, 1.0) for k in clips], np.float64)
    wb = np.array([(b_weights or {}).get(k, 1.0) for k in clips], np.float64)
    diff = float(va.sum() / wa.sum() - vb.sum() / wb.sum())
    if n == 1 or resamples <= 0:
        return Interval(diff, diff, diff, n)
    rng = rng or np.random.default_rng(0)
    idx = rng.integers(0, n, size=(resamples, n))
    stats = _pooled(va, wa, idx) - _pooled(vb, wb, idx)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Interval(diff, float(min(low, diff)), float(max(high, diff)), n)
