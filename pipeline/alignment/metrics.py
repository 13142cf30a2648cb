"""Alignment accuracy against a reference: onset errors in milliseconds."""

from __future__ import annotations

import numpy as np


def onset_error_stats(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Median, mean, 95th percentile of |error| in ms, share within 50 ms, note count."""
    errors = np.abs(np.asarray(predicted) - np.asarray(reference)) * 1000.0
    if errors.size == 0:
        return {"notes": 0}
    return {
        "median_ms": round(float(np.median(errors)), 3),
        "mean_ms": round(float(np.mean(errors)), 3),
        "p95_ms": round(float(np.percentile(errors, 95)), 3),
        "within_50ms": round(float(np.mean(errors <= 50.0)), 4),
        "notes": int(errors.size),
    }
