"""Multi-resolution DTW in bounded memory.

The coarsest level runs full DTW on pooled features; each finer level runs DTW only inside a
band around the path of the level above it. Costs are computed on the fly (never a full cost
matrix), so memory grows with ``frames x band`` instead of ``frames^2``. Levels are added
(pooling 4x more each) until the full DTW at the top fits ``max_full_cells``, so the top level
stays small however long the recording is.
"""

from __future__ import annotations

import itertools

import numba
import numpy as np

from pipeline.alignment.features import SyncFeatures

MAX_FULL_CELLS = 4_000_000  # cells of the one full (unbanded) DTW: 20 MB of accumulated cost + steps


@numba.njit(cache=True, nogil=True, fastmath=True)
def _banded_dtw(chroma_x, onset_x, chroma_y, onset_y, lo, hi, onset_weight, diagonal_weight):  # pragma: no cover
    n = chroma_x.shape[0]
    offsets = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        offsets[i + 1] = offsets[i] + (hi[i] - lo[i])
    acc = np.empty(offsets[n], dtype=np.float32)
    step = np.empty(offsets[n], dtype=np.int8)  # 0 diagonal, 1 from left (j-1), 2 from below (i-1)
    inf = np.float32(np.inf)
    w_onset = np.float32(onset_weight)
    w_diag = np.float32(diagonal_weight)
    for i in range(n):
        for j in range(lo[i], hi[i]):
            dot = np.float32(0.0)
            for k in range(chroma_x.shape[1]):
                dot += chroma_x[i, k] * chroma_y[j, k]
            dist = np.float32(0.0)
            for k in range(onset_x.shape[1]):
                d = onset_x[i, k] - onset_y[j, k]
                dist += d * d
            cost = (np.float32(1.0) - dot) + w_onset * np.sqrt(dist)
            idx = offsets[i] + j - lo[i]
            if i == 0 and j == 0:
                acc[idx] = cost
                step[idx] = 0
                continue
            best = inf
            how = 0
            if i > 0 and lo[i - 1] <= j - 1 < hi[i - 1]:
                v = acc[offsets[i - 1] + j - 1 - lo[i - 1]] + w_diag * cost
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
    x: SyncFeatures,
    y: SyncFeatures,
    lo: np.ndarray,
    hi: np.ndarray,
    onset_weight: float = 1.0,
    diagonal_weight: float = 1.0,
) -> np.ndarray:
    """DTW of ``x`` (rows) against ``y`` (columns) within columns ``[lo[i], hi[i])`` of each row.

    Cost of a cell: cosine distance of the chroma plus ``onset_weight`` x Euclidean distance of
    the onset features. ``diagonal_weight`` 2 is the symmetric step pattern (a diagonal costs as
    much as the horizontal + vertical detour), which does not favour a constant tempo.
    Returns the warping path as ``(steps, 2)`` int array of (row, column), from (0, 0) to the end.
    """
    return _banded_dtw(
        np.ascontiguousarray(x.chroma, dtype=np.float32),
        np.ascontiguousarray(x.onset, dtype=np.float32),
        np.ascontiguousarray(y.chroma, dtype=np.float32),
        np.ascontiguousarray(y.onset, dtype=np.float32),
        lo.astype(np.int64),
        hi.astype(np.int64),
        float(onset_weight),
        float(diagonal_weight),
    )


def band_from_path(path: np.ndarray, factor: int, rows: int, cols: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Project a coarse path to a finer level (``factor`` x more frames) and widen it by ``radius``."""
    lo = np.full(rows, cols, dtype=np.int64)
    hi = np.zeros(rows, dtype=np.int64)
    last_row, last_col = path[-1]
    for a, b in path:
        r0, r1 = a * factor, rows if a == last_row else min(rows, (a + 1) * factor)
        c0 = max(0, b * factor - radius)
        c1 = cols if b == last_col else min(cols, (b + 1) * factor + radius)
        lo[r0:r1] = np.minimum(lo[r0:r1], c0)
        hi[r0:r1] = np.maximum(hi[r0:r1], c1)
    # monotone bands (lo, hi never decrease) keep every band cell reachable from the start
    lo = np.minimum.accumulate(lo[::-1])[::-1]
    hi = np.maximum.accumulate(hi)
    lo[0] = 0
    hi[-1] = cols
    return lo, hi


def pooling_levels(rows: int, cols: int, factor: int, max_full_cells: int = MAX_FULL_CELLS) -> list[int]:
    """Pooling factors from the coarsest level down to 1: ``factor``, then 4x coarser until the top fits."""
    levels = [1] if factor <= 1 else [1, factor]
    while (rows // levels[-1] + 1) * (cols // levels[-1] + 1) > max_full_cells and min(rows, cols) // levels[-1] > 16:
        levels.append(levels[-1] * 4)
    return levels[::-1]


def multiresolution_dtw(
    x: SyncFeatures,
    y: SyncFeatures,
    factor: int = 10,
    radius: int = 50,
    onset_weight: float = 1.0,
    diagonal_weight: float = 1.0,
    max_full_cells: int = MAX_FULL_CELLS,
) -> np.ndarray:
    """Path between ``x`` and ``y`` at their full rate, refined through pooled levels.

    Full DTW at 1/``factor`` of the rate (or coarser, see :func:`pooling_levels`), then banded
    DTW at each finer level: within ``radius`` full-rate frames of the projected path at the
    finest level, within two of the coarser level's frames at the levels in between.
    """
    levels = pooling_levels(len(x), len(y), factor, max_full_cells)
    coarse_x, coarse_y = x.pooled(levels[0]), y.pooled(levels[0])
    n, m = len(coarse_x), len(coarse_y)
    path = banded_dtw(coarse_x, coarse_y, np.zeros(n, np.int64), np.full(n, m, np.int64), onset_weight, diagonal_weight)
    for previous, level in itertools.pairwise(levels):
        fx, fy = x.pooled(level), y.pooled(level)
        ratio = previous // level
        width = max(1, radius // level) if level == 1 else max(2 * ratio, radius // level)
        lo, hi = band_from_path(path, ratio, len(fx), len(fy), width)
        path = banded_dtw(fx, fy, lo, hi, onset_weight, diagonal_weight)
    return path
