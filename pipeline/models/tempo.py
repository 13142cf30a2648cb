"""Tempo classes: the alignment model's coarse tempo input.

The tempo (quarter notes per minute, qpm; e.g. ``tempo_qpm`` of ``data/features/index.csv``) is
binned on a log scale. With ``n`` classes spanning ``[low, high)`` the edges are

    edge_k = low * (high / low) ** (k / n),   k = 0 .. n

and class ``k`` holds ``edge_k <= qpm < edge_{k+1}``; slower tempi fall into class 0 and faster
ones into class ``n - 1``. Defaults: 20 classes over 30-300 qpm, so each class spans a factor
10 ** (1 / 20) = 1.122 (about +-6 % around its geometric centre):

    30.0, 33.7, 37.8, 42.4, 47.5, 53.3, 59.9, 67.2, 75.4, 84.6, 94.9,
    106.4, 119.4, 134.0, 150.4, 168.7, 189.3, 212.4, 238.3, 267.4, 300.0

(120 qpm -> class 12, 60 qpm -> class 6). A value sitting exactly on an edge belongs to the
class above it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

N_TEMPO_CLASSES = 20
TEMPO_RANGE = (30.0, 300.0)


def tempo_edges(n_classes: int = N_TEMPO_CLASSES, tempo_range: tuple[float, float] = TEMPO_RANGE) -> np.ndarray:
    """(n_classes + 1,) class edges in qpm, log-spaced."""
    low, high = _check(n_classes, tempo_range)
    return low * (high / low) ** (np.arange(n_classes + 1) / n_classes)


def tempo_centers(n_classes: int = N_TEMPO_CLASSES, tempo_range: tuple[float, float] = TEMPO_RANGE) -> np.ndarray:
    """(n_classes,) geometric centre of each class in qpm."""
    edges = tempo_edges(n_classes, tempo_range)
    return np.sqrt(edges[:-1] * edges[1:])


def tempo_classes(
    qpm: torch.Tensor | np.ndarray, n_classes: int = N_TEMPO_CLASSES, tempo_range: tuple[float, float] = TEMPO_RANGE
) -> torch.Tensor:
    """Vectorised :func:`tempo_class`: any shape of qpm -> long tensor of the same shape."""
    low, high = _check(n_classes, tempo_range)
    qpm = torch.as_tensor(qpm, dtype=torch.float64)
    if not torch.all(qpm > 0):
        raise ValueError("tempo must be positive")
    # a tiny epsilon so that values on an edge (up to float rounding) go to the class above
    position = n_classes * torch.log(qpm / low) / math.log(high / low) + 1e-9
    return position.floor().clamp(0, n_classes - 1).long()


def tempo_class(qpm: float, n_classes: int = N_TEMPO_CLASSES, tempo_range: tuple[float, float] = TEMPO_RANGE) -> int:
    """Class index (0 .. n_classes - 1) of a tempo in quarter notes per minute."""
    return int(tempo_classes(torch.tensor(float(qpm), dtype=torch.float64), n_classes, tempo_range))


def _check(n_classes: int, tempo_range: tuple[float, float]) -> tuple[float, float]:
    low, high = float(tempo_range[0]), float(tempo_range[1])
    if n_classes < 1 or not 0 < low < high:
        raise ValueError(f"need n_classes >= 1 and 0 < low < high, got {n_classes}, {tempo_range}")
    return low, high
