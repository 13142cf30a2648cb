"""Multi-resolution DTW in bounded memory.

Level 0 runs full DTW on strongly pooled features; each finer level runs DTW only inside a
band around the path of the level before it. Costs are computed on the fly (never a full
cost matrix), so memory grows with ``frames x band`` instead of ``frames^2``.
"""

from __future__ import annotations

import numba
import numpy as np

from pipeline.alignment.features import SyncFeatures


@numba.njit(cache=True, nogil=True)
def _banded_dtw(chroma_x, onset_x, chroma_y, onset_y, lo, hi, onset_weight, diagonal_weight):  # pragma: no cover - numba
    n = chroma_x.shape[0]
    offsets = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        offsets[i + 1] = offsets[i] + (hi[i] - lo[i])
    acc = np.empty(offsets[n], dtype=np.float32)
    step = np.empty(offsets[n], dtype=np.int8)  # 0 diagonal, 1 from left (j-1), 2 from below (i-1)
    inf = np.float32(np.inf)
    for i in range(n):
        for j in range(lo[i], hi[i]):
            dot = 0.0
            dist = 0.0
            for k in range(chroma_x.shape[1]):
                dot += chroma_x[i, k] * chroma_y[j, k]
                d = onset_x[i, k] - onset_y[j, k]
                dist += d * d
            cost = np.float32((1.0 - dot) + onset_weight * np.sqrt(dist))
            idx = offsets[i] + j - lo[i]
            if i == 0 and j == 0:
                acc[idx] = cost
                step[idx] = 0
                continue
            best = inf
            how = 0
            if i > 0 and lo[i - 1] <= j - 1 < hi[i - 1]:
                v = acc[offsets[i - 1] + j - 1 - lo[i - 1]] + diagonal_weight * cost
                if v < best:
                    best = v
                    how = 0
            if j > lo[i]:
                v = acc[idx - 1] + cost
                if v < best:
                    best = v
                    how = 1
            if i > 0 and lo[i - 1] <= j < hi[i - 1]:
                v = acc[offsets[i - 1] + j - lo[i - 1]] + cost
                if v < best:
                    best = v
                    how = 2
            acc[idx] = best
            step[idx] = how
    # backtrack from the end
    path = np.empty((n + chroma_y.shape[0], 2), dtype=np.int64)
    i, j = n - 1, chroma_y.shape[0] - 1
    count = 0
    while True:
        path[count, 0] = i
        path[count, 1] = j
        count += 1
        if i == 0 and j == 0:
            break
        how = step[offsets[i] + j - lo[i]]
        if how == 0:
            i -= 1
            j -= 1
        elif how == 1:
            j -= 1
        else:
            i -= 1
    return path[:count][::-1].copy()


def banded_dtw(
    x: SyncFeatures, y: SyncFeatures, lo: np.ndarray, hi: np.ndarray, onset_weight: float = 1.0, diagonal_weight: float = 1.0
) -> np.ndarray:
    """DTW of ``x`` (rows) against ``y`` (columns) within columns ``[lo[i], hi[i])`` of each row.

    ``diagonal_weight`` 2 is the symmetric step pattern (a diagonal costs as much as the
    horizontal + vertical detour), which does not favour a constant tempo.
    Returns the warping path as ``(steps, 2)`` int array of (row, column), from (0, 0) to the end.
    """
    return _banded_dtw(x.chroma, x.onset, y.chroma, y.onset, lo.astype(np.int64), hi.astype(np.int64), float(onset_weight), float(diagonal_weight))


def band_from_path(path: np.ndarray, factor: int, rows: int, cols: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Project a coarse path to a finer level (``factor`` x more frames) and widen it by ``radius``."""
    lo = np.full(rows, cols, dtype=np.int64)
    hi = np.zeros(rows, dtype=np.int64)
    for a, b in path:
        r0, r1 = a * factor, min(rows, (a + 1) * factor)
        if a == path[-1, 0]:
            r1 = rows
        c0 = max(0, b * factor - radius)
        c1 = cols if b == path[-1, 1] else min(cols, (b + 1) * factor + radius)
        lo[r0:r1] = np.minimum(lo[r0:r1], c0)
        hi[r0:r1] = np.maximum(hi[r0:r1], c1)
    # monotone bands (lo, hi never decrease) keep every band cell reachable from the start
    lo = np.minimum.accumulate(lo[::-1])[::-1]
    hi = np.maximum.accumulate(hi)
    lo[0] = 0
    hi[-1] = cols
    return lo, hi


def multiresolution_dtw(
    x: SyncFeatures,
    y: SyncFeatures,
    factors: tuple[int, ...] = (10,),
    radius: int = 50,
    onset_weight: float = 1.0,
    diagonal_weight: float = 1.0,
) -> np.ndarray:
    """Path between ``x`` and ``y`` at their full rate, refined through pooled levels.

    ``factors`` are pooling factors from the coarsest level down, e.g. ``(10,)``: full DTW at
    1/10 of the rate, then banded DTW at full rate within ``radius`` frames of it.
    """
    levels = sorted(set(factors) | {1}, reverse=True)
    coarse_x, coarse_y = x.pooled(levels[0]), y.pooled(levels[0])
    n, m = len(coarse_x), len(coarse_y)
    path = banded_dtw(coarse_x, coarse_y, np.zeros(n, np.int64), np.full(n, m, np.int64), onset_weight, diagonal_weight)
    for previous, factor in zip(levels[:-1], levels[1:]):
        fx, fy = x.pooled(factor), y.pooled(factor)
        lo, hi = band_from_path(path, previous // factor, len(fx), len(fy), max(1, radius // factor))
        path = banded_dtw(fx, fy, lo, hi, onset_weight, diagonal_weight)
    return path
