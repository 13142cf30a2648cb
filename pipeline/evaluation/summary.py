"""The table's numbers from the per-clip scores, one aggregation per kind: each cell's mean and
bootstrap interval (:func:`summarise`), the paired differences of the declared comparisons
(:func:`compare`), the transcription metrics by material (:func:`by_material`) and the timing
errors pooled over notes for the timing plot (:func:`timing_summary`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.evaluation.bootstrap import Interval
from pipeline.evaluation.scoring import COLUMNS, HIGHER_IS_BETTER, TRANSCRIPTION_METRICS, Scores, TimingErrors


@dataclass
class Table:
    """The evaluation table: per system and metric the mean, interval bounds and clip count."""

    mean: pd.DataFrame
    low: pd.DataFrame
    high: pd.DataFrame
    clips: pd.DataFrame

    def cell(self, system: str, metric: str) -> Interval:
        return Interval(
            float(self.mean.loc[system, metric]),
            float(self.low.loc[system, metric]),
            float(self.high.loc[system, metric]),
            int(self.clips.loc[system, metric]),
        )


def summarise(scores: Scores, systems: list[str], resamples: int, confidence: float, seed: int) -> Table:
    frames = {k: pd.DataFrame(index=systems, columns=COLUMNS, dtype=float) for k in ("mean", "low", "high", "clips")}
    for system in systems:
        for metric in COLUMNS:
            cell = scores.interval(system, metric, resamples, confidence, seed)
            frames["mean"].loc[system, metric] = cell.mean
            frames["low"].loc[system, metric] = cell.low
            frames["high"].loc[system, metric] = cell.high
            frames["clips"].loc[system, metric] = cell.n
    return Table(**frames)


@dataclass(frozen=True)
class Comparison:
    system: str
    baseline: str
    metric: str
    difference: Interval  # system minus baseline

    @property
    def significant(self) -> bool:
        return self.difference.excludes_zero()

    @property
    def better(self) -> bool | None:
        """Whether ``system`` is better than ``baseline`` (None: no significant difference)."""
        if not self.significant:
            return None
        return (self.difference.mean > 0) == (self.metric in HIGHER_IS_BETTER)


def compare(
    scores: Scores, pairs: list[tuple[str, str]], resamples: int, confidence: float, seed: int
) -> list[Comparison]:
    """Paired differences for every metric both systems of each pair have on common clips."""
    out = []
    for a, b in pairs:
        for metric in COLUMNS:
            if scores.values[a][metric] and scores.values[b][metric]:
                diff = scores.difference(a, b, metric, resamples, confidence, seed)
                if diff.n:
                    out.append(Comparison(a, b, metric, diff))
    return out


def by_material(scores: Scores, systems: list[str], polyphonic: dict[str, bool]) -> dict[str, dict[str, float]]:
    """Mean of the transcription metrics over monophonic and over polyphonic clips (their ceilings differ)."""
    out = {}
    for system in systems:
        row = {}
        for metric in TRANSCRIPTION_METRICS:
            values = scores.values[system][metric]
            for name, poly in (("monophonic", False), ("polyphonic", True)):
                part = [v for clip, v in values.items() if polyphonic[clip.rsplit("@", 1)[0]] == poly]
                if part:
                    row[f"{metric}_{name}"] = float(np.mean(part))
        if row:
            out[system] = row
    return out


def timing_summary(errors: TimingErrors) -> dict[str, dict[str, float]]:
    """Each timing system's errors pooled over all its notes: mean absolute onset and duration error in
    ms, the onset error in frames, its median in ms, and the number of notes (the timing plot)."""
    out = {}
    frame_seconds = errors.frame_seconds
    for system, clips in errors.clips.items():
        onset = np.concatenate([o for _, o, _ in clips]) if clips else np.array([])
        duration = np.concatenate([d for _, _, d in clips]) if clips else np.array([])
        out[system] = {
            "onset_error_ms": float(onset.mean() * frame_seconds * 1000) if len(onset) else float("nan"),
            "duration_error_ms": float(duration.mean() * frame_seconds * 1000) if len(duration) else float("nan"),
            "onset_error_frames": float(onset.mean()) if len(onset) else float("nan"),
            "median_onset_error_ms": float(np.median(onset) * frame_seconds * 1000) if len(onset) else float("nan"),
            "notes": len(onset),
        }
    return out
