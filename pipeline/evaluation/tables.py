"""The evaluate table's written forms: metrics/evaluate.json, table2.csv / table2.md, the plots' CSVs,
and the MLflow run that holds them with the listening report."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import Params
from pipeline.datasets.split import Split
from pipeline.evaluation.latency import LatencyChoice
from pipeline.evaluation.scoring import COLUMN_TITLES, COLUMNS, TRANSCRIPTION_METRICS
from pipeline.evaluation.summary import Comparison, Table
from pipeline.io import atomic_path, write_json


@dataclass(frozen=True)
class TableOutputs:
    """Where the evaluate stage writes its table (the paths dvc.yaml names)."""

    metrics: Path  # system -> metric (JSON, for `dvc metrics show`)
    table_csv: Path  # rows = systems, each metric with its interval's bounds
    table_md: Path  # the same as markdown, with the by-material means and the paired differences
    mse_plot: Path  # system, audio log-mel MSE (CSV, for `dvc plots`)
    timing_plot: Path  # system, timing errors (CSV)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def write_tables(
    outputs: TableOutputs,
    table: Table,
    diffs: list[Comparison],
    timing: dict,
    n_clips: int,
    split: Split,
    confidence: float,
    materials: dict[str, dict[str, float]],
    latency: LatencyChoice,
    models: dict[str, str] | None = None,
    title: str = "",
    not_scored: dict[str, dict[str, dict[str, int]]] | None = None,
    timing_set: dict[str, int] | None = None,
) -> None:
    """Write every file of ``outputs``: ``timing`` is the timing plot's rows
    (:func:`pipeline.evaluation.summary.timing_summary`), ``materials`` the by-material means, ``latency``
    the one transcriber latency every system was scored at and what it was chosen on, ``models`` the md5
    of each model file evaluated, ``title`` the table's (the corpus and its test clips), ``not_scored``
    per system ``{metric: {reason: clips}}`` of the clips a metric has no value on
    (:meth:`pipeline.evaluation.scoring.Scores.not_scored`), ``timing_set`` what the timing rows were scored
    on (``clips``, test recordings ``with_audio`` and ``annotation_only``)."""
    metrics: dict = {}
    for system in table.mean.index:
        row: dict = {}
        for c in COLUMNS:
            cell = table.cell(system, c)
            row[c] = _round(cell.mean)
            if cell.n:
                row[f"{c}_low"], row[f"{c}_high"] = _round(cell.low), _round(cell.high)
        reasons = (not_scored or {}).get(system)
        if reasons:  # why a metric has no value on some clips: {metric: {reason: clips}}
            row["not_scored"] = reasons
        metrics[slug(system)] = row
    metrics["differences"] = {f"{slug(d.system)}_vs_{slug(d.baseline)}": {} for d in diffs}
    for d in diffs:
        metrics["differences"][f"{slug(d.system)}_vs_{slug(d.baseline)}"][d.metric] = {
            "difference": _round(d.difference.mean),
            "low": _round(d.difference.low),
            "high": _round(d.difference.high),
            "significant": d.significant,
        }
    metrics["by_material"] = {slug(s): {k: _round(v) for k, v in row.items()} for s, row in materials.items()}
    metrics["transcriber_latency"] = latency.to_json()  # chosen on training clips, the same for every system
    metrics["title"] = title
    metrics["clips"] = n_clips
    metrics["test_recordings"] = len(split.test)
    if timing_set is not None:  # the timing rows' clips: every test recording, with audio or annotation-only
        metrics["timing_test_set"] = dict(timing_set)
    metrics["confidence"] = confidence
    if models is not None:  # {model folder: md5 of its model.pt}: what was evaluated (`performer models register`)
        metrics["models"] = dict(models)
    write_json(outputs.metrics, metrics)
    with atomic_path(outputs.table_csv) as tmp:
        flat = pd.DataFrame(index=table.mean.index)
        for c in COLUMNS:  # each metric, then its interval's bounds
            flat[c], flat[f"{c}_low"], flat[f"{c}_high"] = table.mean[c], table.low[c], table.high[c]
        flat.rename_axis("system").to_csv(tmp, float_format="%.4f")
    with atomic_path(outputs.table_md) as tmp:
        Path(tmp).write_text(
            (f"## {title}\n\n" if title else "")
            + markdown_table(table)
            + f"\n{latency.describe()}; every system is scored at it. The score-following columns measure how "
            "closely the audio's transcribed notes follow the score, not how real it sounds.\n"
            + (f"{timing_sentence(timing_set)}\n" if timing_set else "")
            + "\n"
            + markdown_materials(materials)
            + "\n"
            + markdown_differences(diffs, confidence)
        )
    rows = [{"system": s, "mel_mse": v} for s, v in table.mean["audio_mel_mse"].items() if not np.isnan(v)]
    with atomic_path(outputs.mse_plot) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    timing_rows_ = [{"system": s, **dict(t)} for s, t in timing.items()]
    with atomic_path(outputs.timing_plot) as tmp:
        pd.DataFrame(timing_rows_).to_csv(tmp, index=False)


def timing_sentence(timing_set: dict[str, int]) -> str:
    """What the timing columns were scored on, for the line under the table."""
    audio, silent = timing_set.get("with_audio", 0), timing_set.get("annotation_only", 0)
    extra = f", {silent} of them annotation-only (the dataset's human timing, no audio)" if silent else ""
    return f"The timing columns: the notes of {timing_set.get('clips', 0)} clips of {audio + silent} test recordings{extra}."


def _round(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def _fmt(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"


def display_table(table: Table) -> pd.DataFrame:
    """Cells as ``mean ± half-width`` strings (a dash where the metric does not apply)."""
    titles = [COLUMN_TITLES[c] for c in COLUMNS]
    out = pd.DataFrame(index=table.mean.index, columns=titles, dtype=object)
    for system in table.mean.index:
        for c, title in zip(COLUMNS, titles):
            cell = table.cell(system, c)
            out.loc[system, title] = (
                "–" if not cell.n or not np.isfinite(cell.mean) else (f"{_fmt(cell.mean)} ± {_fmt(cell.half_width)}")
            )
    return out


def markdown_table(table: Table) -> str:
    """The table with the column titles of :data:`~pipeline.evaluation.scoring.COLUMN_TITLES`."""
    shown = display_table(table)
    lines = ["| system | " + " | ".join(shown.columns) + " |", "| --- |" + " --- |" * len(shown.columns)]
    for system, row in shown.iterrows():
        lines.append(f"| {system} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def markdown_materials(materials: dict[str, dict[str, float]]) -> str:
    keys = [f"{m}_{k}" for m in TRANSCRIPTION_METRICS for k in ("monophonic", "polyphonic")]
    titles = [f"{COLUMN_TITLES[m]}, {k}" for m in TRANSCRIPTION_METRICS for k in ("monophonic", "polyphonic")]
    lines = [
        "Score-following metrics by material (means over monophonic / polyphonic clips):",
        "",
        "| system | " + " | ".join(titles) + " |",
        "| --- |" + " --- |" * len(keys),
    ]
    for system, row in materials.items():
        lines.append(f"| {system} | " + " | ".join(_fmt(row[k]) if k in row else "–" for k in keys) + " |")
    return "\n".join(lines) + "\n"


def markdown_differences(diffs: list[Comparison], confidence: float) -> str:
    """The paired comparisons: difference (system minus baseline) and its interval; ** significant."""
    lines = [
        (
            f"Paired differences (first system minus second, {confidence:.0%} paired bootstrap interval over "
            "clips; **bold** = the interval excludes 0, with the better system named):"
        ),
        "",
        "| comparison | metric | difference | interval | better |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in diffs:
        diff = d.difference
        mark = "**" if d.significant else ""
        better = "–" if d.better is None else (d.system if d.better else d.baseline)
        lines.append(
            f"| {d.system} vs {d.baseline} | {COLUMN_TITLES[d.metric]} | {mark}{diff.mean:+.3f}{mark} | "
            f"[{diff.low:+.3f}, {diff.high:+.3f}] | {better} |"
        )
    return "\n".join(lines) + "\n"


def log_to_mlflow(params: Params, table: Table, outputs: TableOutputs, report: Path) -> None:
    """A new MLflow run of the evaluate stage: the table's means as metrics, its files and the report as
    artifacts."""
    from pipeline.tracking import MlflowTracker, dvc_dep_tags

    tags = {"stage": "evaluate", **dvc_dep_tags("evaluate")}
    run_dir = outputs.metrics.parent
    (run_dir / "mlflow_run_id").unlink(missing_ok=True)  # every evaluation is a new run
    tracker = MlflowTracker(
        "deep-performer", "evaluate", run_dir, params={"evaluate": asdict(params.evaluate)}, tags=tags
    )
    try:
        flat = {
            f"{slug(s)}.{c}": float(v) for s, row in table.mean.iterrows() for c, v in row.items() if np.isfinite(v)
        }
        tracker.log_metrics(flat, 0)
        for path in (outputs.metrics, outputs.table_csv, outputs.table_md):
            tracker.log_artifact(path)
        tracker.mlflow.log_artifacts(str(report), artifact_path="report")
        tracker.end()
    finally:
        (run_dir / "mlflow_run_id").unlink(missing_ok=True)
