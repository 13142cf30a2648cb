"""How far to trust an alignment: a confidence per recording and per note, in [0, 1] (1 = confident).

DTW always returns a path, even between a recording and the wrong score, or through a passage the score
does not hold (applause, tuning, a cadenza). Two things tell a real alignment from a forced one, and the
confidence is their product:

* **pitch agreement** ``1 - cost / reversed cost``, clipped to [0, 1]: both costs are the mean chroma
  (cosine) distance along a full DTW path at the alignment's coarsest level (same features, same step
  weights), once against the reference rendering and once against the same rendering played backwards,
  which has the score's pitch content and the same freedom to warp but not its order. 0: the path fits
  the recording no better than the reversed score's; 1: a perfect fit.
* **timing plausibility** ``min(1, STALL_TOLERANCE / stall)``: ``stall`` is the longest the full-rate
  path spends on ``STALL_WINDOW`` seconds of one signal while the other moves on (the recording going on
  while the score waits, or the score racing through notes the recording does not play), in seconds at
  the recording's average tempo, counting only frames within ``QUIET_DB`` of the loud level (a pause
  longer than the score's rest, silent or a reverb tail, is harmless). An unscored passage makes the
  path stall for about its length.

Per note, the same two, locally: chroma ``1 - c / chance`` (``c``: the mean chroma distance of the path
steps within ``NOTE_WINDOW`` of the note's onset in the reference; ``chance``: the mean distance between
random frames of the two signals), times the timing plausibility of the path within
``NOTE_STALL_WINDOW`` of the onset (notes next to a stall are often dragged into it).

Only chroma: the onset features agree about as well on a wrong pair as on a right one (measured), and
the chroma of noise is flat enough to match any music, which is why stalls are measured on their own.
docs/benchmarks.md ("Alignment confidence") has the numbers behind each choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.alignment.dtw import banded_dtw, pooling_levels
from pipeline.alignment.features import SyncFeatures

STALL_WINDOW = 0.1  # seconds of one signal over which the time spent in the other is measured
STALL_TOLERANCE = 1.0  # seconds (at the average tempo) a path may spend on STALL_WINDOW without losing confidence
NOTE_WINDOW = (-0.05, 0.15)  # seconds of the reference around a note's onset whose chroma distance judges it
NOTE_STALL_WINDOW = (-2.0, 1.0)  # seconds of the reference around a note's onset whose stalls count against it
QUIET_DB = 25.0  # frames this far under the loud (95th percentile) level do not count towards a stall
CHANCE_PAIRS = 20_000  # random frame pairs that estimate the chance-level chroma distance
CHANCE_SEED = 0


@dataclass
class AlignmentConfidence:
    """``recording``: the whole alignment (``pitch`` x ``timing``); ``notes``: one per note (score order);
    ``stall``: the longest stall in seconds at the average tempo (see the module)."""

    recording: float
    notes: np.ndarray
    pitch: float
    timing: float
    stall: float


def chroma_distance(x: SyncFeatures, y: SyncFeatures, pairs: np.ndarray) -> np.ndarray:
    """Cosine distance of the (unit) chroma of ``x`` row ``pairs[:, 0]`` and ``y`` row ``pairs[:, 1]``."""
    return 1.0 - np.einsum("ij,ij->i", x.chroma[pairs[:, 0]], y.chroma[pairs[:, 1]])


def reversed_features(x: SyncFeatures) -> SyncFeatures:
    """``x`` played backwards (frame order reversed)."""
    return SyncFeatures(x.chroma[::-1].copy(), x.onset[::-1].copy(), x.level[::-1].copy(), x.rate)


def _full_path_cost(x: SyncFeatures, y: SyncFeatures, onset_weight: float, diagonal_weight: float) -> float:
    n, m = len(x), len(y)
    path = banded_dtw(x, y, np.zeros(n, np.int64), np.full(n, m, np.int64), onset_weight, diagonal_weight)
    return float(chroma_distance(x, y, path).mean())


def pitch_agreement(
    x: SyncFeatures, y: SyncFeatures, factor: int, onset_weight: float, diagonal_weight: float
) -> float:
    """``1 - cost / reversed cost`` of full DTW at the coarsest level of the alignment (see the module)."""
    level = pooling_levels(len(x), len(y), factor)[0]
    coarse_x, coarse_y = x.pooled(level), y.pooled(level)
    forward = _full_path_cost(coarse_x, coarse_y, onset_weight, diagonal_weight)
    backward = _full_path_cost(reversed_features(coarse_x), coarse_y, onset_weight, diagonal_weight)
    return float(np.clip(1.0 - forward / backward, 0.0, 1.0)) if backward > 0 else 0.0


def audible(level: np.ndarray, quiet_db: float) -> np.ndarray:
    """Frames louder than ``quiet_db`` under the loud (95th percentile) level (all of them for 0 or less)."""
    if quiet_db <= 0 or len(level) == 0:
        return np.ones(len(level), dtype=bool)
    return np.asarray(level > np.percentile(level, 95) - quiet_db)


def stall_profile(path: np.ndarray, rows: int, counted: np.ndarray, window: int) -> np.ndarray:
    """Per row ``i`` of the path (axis 0): the counted columns the path covers within rows ``[i, i + window)``."""
    first = np.full(rows, np.iinfo(np.int64).max)
    last = np.zeros(rows, dtype=np.int64)
    np.minimum.at(first, path[:, 0], path[:, 1])
    np.maximum.at(last, path[:, 0], path[:, 1])
    first = np.minimum.accumulate(first[::-1])[::-1]  # rows the path skips take the next row's first column
    last = np.maximum.accumulate(last)
    cumulative = np.r_[0, np.cumsum(counted)]
    end = np.minimum(np.arange(rows) + window - 1, rows - 1)
    return cumulative[last[end] + 1] - cumulative[first]


def stalls(
    x: SyncFeatures, y: SyncFeatures, path: np.ndarray, quiet_db: float = QUIET_DB
) -> tuple[np.ndarray, np.ndarray]:
    """Per reference row: the recording time (s) the path spends on the next ``STALL_WINDOW`` of the
    reference, and the reference time it spends on the recording's ``STALL_WINDOW`` starting there
    (mapped to that row), both in seconds at the recording's average tempo, silent frames not counted."""
    window = max(1, int(round(STALL_WINDOW * x.rate)))
    tempo = len(x) / max(1, len(y))  # reference frames per recording frame, on average
    waits = stall_profile(path, len(x), audible(y.level, quiet_db), window) * tempo / x.rate
    races_by_col = stall_profile(path[:, ::-1], len(y), audible(x.level, quiet_db), window) / tempo / y.rate
    races = np.zeros(len(x))
    np.maximum.at(races, path[:, 0], races_by_col[path[:, 1]])
    return waits, races


def plausibility(stall: np.ndarray | float) -> np.ndarray:
    """``min(1, STALL_TOLERANCE / stall)``."""
    return np.minimum(1.0, STALL_TOLERANCE / np.maximum(np.asarray(stall, dtype=float), 1e-9))


def _window_rows(onset_rows: np.ndarray, window: tuple[float, float], rate: float, rows: int):
    lo = np.clip(np.round(onset_rows + window[0] * rate).astype(np.int64), 0, rows - 1)
    hi = np.clip(np.round(onset_rows + window[1] * rate).astype(np.int64) + 1, lo + 1, rows)
    return lo, hi


def note_confidence(
    x: SyncFeatures, y: SyncFeatures, path: np.ndarray, onset_rows: np.ndarray, stall: np.ndarray
) -> np.ndarray:
    """Per note: local chroma agreement x local timing plausibility (see the module)."""
    rng = np.random.default_rng(CHANCE_SEED)
    chance_pairs = np.stack([rng.integers(0, len(x), CHANCE_PAIRS), rng.integers(0, len(y), CHANCE_PAIRS)], axis=1)
    chance = float(chroma_distance(x, y, chance_pairs).mean())
    cost = chroma_distance(x, y, path)
    sums = np.r_[0.0, np.cumsum(np.bincount(path[:, 0], weights=cost, minlength=len(x)))]
    counts = np.r_[0.0, np.cumsum(np.bincount(path[:, 0], minlength=len(x)))]
    lo, hi = _window_rows(onset_rows, NOTE_WINDOW, x.rate, len(x))
    local = (sums[hi] - sums[lo]) / np.maximum(counts[hi] - counts[lo], 1.0)
    agreement = np.clip(1.0 - local / chance, 0.0, 1.0) if chance > 0 else np.zeros(len(onset_rows))
    lo, hi = _window_rows(onset_rows, NOTE_STALL_WINDOW, x.rate, len(x))
    worst = np.array([stall[a:b].max() for a, b in zip(lo, hi)])
    return agreement * plausibility(worst)


def alignment_confidence(
    x: SyncFeatures,
    y: SyncFeatures,
    path: np.ndarray,
    onset_rows: np.ndarray,
    factor: int,
    onset_weight: float,
    diagonal_weight: float,
) -> AlignmentConfidence:
    """The confidences of the alignment ``path`` of ``x`` (reference, rows) to ``y`` (recording, columns).

    ``onset_rows``: each note's onset as a (fractional) row of ``x``; ``factor``, ``onset_weight``,
    ``diagonal_weight``: the DTW's settings.
    """
    waits, races = stalls(x, y, path)
    stall = np.maximum(waits, races)
    pitch = pitch_agreement(x, y, factor, onset_weight, diagonal_weight)
    longest = float(stall.max()) if len(stall) else 0.0
    timing = float(plausibility(longest))
    return AlignmentConfidence(
        recording=pitch * timing,
        notes=note_confidence(x, y, path, onset_rows, stall),
        pitch=pitch,
        timing=timing,
        stall=longest,
    )
