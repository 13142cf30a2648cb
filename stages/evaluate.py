"""Stage `evaluate`: every system on the same held-out clips; the paper's Table 2 on our data.

Outputs: metrics/evaluate.json (system -> metric, for `dvc metrics show`), metrics/table2.csv and
metrics/table2.md (rows = systems), plots/evaluate_*.csv, the listening report reports/index.html,
and an MLflow run holding all of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from pipeline.config import MelConfig, Params
from pipeline.datasets.clips import ClipDataset, collate_clips, split_recordings
from pipeline.errors import PipelineError
from pipeline.evaluation import systems as sys_
from pipeline.evaluation.evaluate import COLUMNS, Scores, clip_infos, run_systems, timing_table
from pipeline.evaluation.report import ReportClip, SystemOutput, write_report
from pipeline.evaluation.timing import alignment_model_timing, constant_tempo, timing_rows
from pipeline.io import atomic_path, write_json
from pipeline.mel import log_mel
from pipeline.models.alignment import AlignmentModel
from pipeline.training.alignment_task import model_class_tempo
from pipeline.training.run import load_model
from stages._common import stage_main
from stages._training import FEATURES

AUDIO = Path("data/audio16k")
MODELS = Path("models")
REPORT = Path("reports")

ABLATION_TITLES = {"no_notewise_pe": "w/o note-wise PE", "no_performer_embedding": "w/o performer embedding",
                   "no_encoder": "w/o encoder"}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def build_systems(params: Params) -> dict:
    """Ordered systems: name -> callable(batch) -> [ClipOutput]. Fails naming a system without a model."""
    vocoder = sys_.load_vocoder(MODELS)
    systems = {"Deep Performer": sys_.synthesis_system(MODELS, "synthesis", vocoder, "Deep Performer")}
    for name in params.train_synthesis.ablations:
        title = ABLATION_TITLES.get(name, name)
        systems[title] = sys_.synthesis_system(MODELS, f"synthesis_{name}", vocoder, title)
    systems["HiFi-GAN baseline"] = sys_.pianoroll_hifigan_system(MODELS)
    systems["PerformanceNet"] = sys_.performancenet_system(MODELS, params.train_performancenet.griffin_lim_iterations,
                                                           params.mel)
    systems["Vocoder reconstruction"] = sys_.vocoder_reconstruction(vocoder)
    systems["Recording"] = sys_.recording()
    return systems


def run(params: Params) -> None:
    config = params.evaluate
    torch.manual_seed(0)
    index = pd.read_csv(FEATURES / "index.csv", dtype={"id": str})
    _, val_ids = split_recordings(index, params.train_synthesis.validation_share, params.train_synthesis.train.seed)
    if not val_ids:
        raise PipelineError("no held-out recordings to evaluate on (the corpus needs at least two)", FEATURES)
    polyphonic = {r: str(p).lower() in ("true", "1") for r, p in zip(index["id"], index["polyphonic"])}
    clips = ClipDataset(FEATURES, val_ids, audio_dir=AUDIO)
    order = list(range(len(clips)))[: config.clips or None]
    systems = build_systems(params)
    frame_seconds = params.mel.hop_length / params.mel.sample_rate

    # ---- synthesis systems, on the same clips
    scores = Scores()
    kept: dict[str, dict[str, sys_.ClipOutput]] = {}
    report_ids = {f"{clips.refs[i].recording}@{clips.refs[i].start}" for i in order[: config.report_clips]}

    def keep(system, clip, out):
        if clip.id in report_ids:
            kept.setdefault(clip.id, {})[system] = out

    def batches():
        for i in range(0, len(order), config.batch_size):
            chunk = order[i:i + config.batch_size]
            batch = collate_clips([clips[j] for j in chunk])
            yield batch, clip_infos(batch, [clips.refs[j] for j in chunk], polyphonic)

    n_batches = -(-len(order) // config.batch_size)
    with tqdm(total=n_batches * len(systems), desc="evaluate systems", unit="system-batch") as bar:
        run_systems(systems, batches(), scores, config.audio_metric_clips, keep, bar)
    table = scores.table(list(systems) + ["Constant tempo", "Constant tempo (exact tempo)"])

    # ---- timing: the alignment model vs constant tempo, on the held-out clips' notes
    alignment = load_model(sys_.require_model(MODELS / "alignment" / "model.pt", "alignment model"), AlignmentModel)
    starting = ClipDataset(FEATURES, val_ids, notes="starting")
    timing_systems = ("Deep Performer", "Constant tempo", "Constant tempo (exact tempo)")
    errors: dict = {name: {"onset": [], "duration": []} for name in timing_systems}
    frame_rate = 1.0 / frame_seconds
    for i in range(0, len(starting), config.batch_size):
        batch = collate_clips([starting[j] for j in range(i, min(len(starting), i + config.batch_size))])
        predictions = (alignment_model_timing(alignment, batch),
                       constant_tempo(batch, frame_rate, qpm=model_class_tempo(alignment, batch["tempo_qpm"])),
                       constant_tempo(batch, frame_rate))
        for name, (onset, duration) in zip(timing_systems, predictions):
            rows = timing_rows(onset, duration, batch)
            errors[name]["onset"].append(rows["onset"])
            errors[name]["duration"].append(rows["duration"])
    timing = timing_table(errors, frame_seconds)
    for name, values in timing.items():
        table.loc[name, "onset_error_ms"] = values["onset_error_ms"]
        table.loc[name, "duration_error_ms"] = values["duration_error_ms"]
    missing = [s for s in systems if np.isnan(table.loc[s, "audio_mel_mse"])]
    if missing:
        raise PipelineError(f"systems without outputs: {', '.join(missing)}", "evaluate")

    write_outputs(table, timing, len(order), val_ids, params)
    write_report(REPORT, table, report_clips(clips, order[: config.report_clips], kept, polyphonic, params.mel),
                 title="deep-performer: held-out clips",
                 notes=f"{len(order)} clips of {len(val_ids)} held-out recordings ({', '.join(val_ids)}); "
                       f"audio metrics on the first {min(len(order), config.audio_metric_clips)} clips. "
                       "Built-in corpus, CPU-sized training: not the paper's numbers.")
    log_to_mlflow(params, table, timing)
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))


def report_clips(clips: ClipDataset, chosen: list[int], kept: dict, polyphonic: dict,
                 mel_config: MelConfig) -> list[ReportClip]:
    """The report's clips: every system's audio beside its own mel (or, without one, its audio's mel)."""
    out = []
    seconds_per_frame = mel_config.hop_length / mel_config.sample_rate
    for i in chosen:
        ref = clips.refs[i]
        item = clips[i]
        cid = f"{ref.recording}@{ref.start}"
        outputs = {name: SystemOutput(audio=result.audio,
                                      mel=result.mel if result.mel is not None else log_mel(result.audio, mel_config))
                   for name, result in kept.get(cid, {}).items()}
        order = ["Recording"] + [n for n in outputs if n != "Recording"]
        out.append(ReportClip(id=cid, title=f"{ref.recording}, from {ref.start * seconds_per_frame:.1f} s"
                              f"{' (polyphonic)' if polyphonic[ref.recording] else ''}",
                              pitch=item["pitch"], onset_frame=item["onset_frame"], offset_frame=item["offset_frame"],
                              outputs={n: outputs[n] for n in order if n in outputs}))
    return out


def write_outputs(table: pd.DataFrame, timing: dict, n_clips: int, val_ids: list[str], params: Params) -> None:
    metrics = {slug(system): {c: (None if np.isnan(v) else round(float(v), 4)) for c, v in row.items()}
               for system, row in table.iterrows()}
    metrics["clips"] = n_clips
    metrics["held_out_recordings"] = len(val_ids)
    write_json(Path("metrics/evaluate.json"), metrics)
    with atomic_path(Path("metrics/table2.csv")) as tmp:
        table.rename_axis("system").to_csv(tmp, float_format="%.4f")
    with atomic_path(Path("metrics/table2.md")) as tmp:
        Path(tmp).write_text(markdown_table(table))
    rows = [{"system": s, "mel_mse": v} for s, v in table["audio_mel_mse"].items() if not np.isnan(v)]
    with atomic_path(Path("plots/evaluate_audio_mel_mse.csv")) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    timing_rows_ = [{"system": s, **{k: v for k, v in t.items()}} for s, t in timing.items()]
    with atomic_path(Path("plots/evaluate_timing.csv")) as tmp:
        pd.DataFrame(timing_rows_).to_csv(tmp, index=False)


def markdown_table(table: pd.DataFrame) -> str:
    def fmt(v):
        return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"

    lines = ["| system | " + " | ".join(COLUMNS) + " |", "| --- |" + " --- |" * len(COLUMNS)]
    for system, row in table.iterrows():
        lines.append(f"| {system} | " + " | ".join(fmt(row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def log_to_mlflow(params: Params, table: pd.DataFrame, timing: dict) -> None:
    from dataclasses import asdict

    from pipeline.tracking import MlflowTracker, dvc_input_hashes

    tags = {"stage": "evaluate", **{f"dvc_dep:{p}": h for p, h in dvc_input_hashes("evaluate").items()}}
    run_dir = Path("metrics")
    (run_dir / "mlflow_run_id").unlink(missing_ok=True)  # every evaluation is a new run
    tracker = MlflowTracker("deep-performer", "evaluate", run_dir, params={"evaluate": asdict(params.evaluate)}, tags=tags)
    try:
        flat = {f"{slug(s)}.{c}": float(v) for s, row in table.iterrows() for c, v in row.items() if np.isfinite(v)}
        tracker.log_metrics(flat, 0)
        for path in ("metrics/evaluate.json", "metrics/table2.csv", "metrics/table2.md"):
            tracker.log_artifact(path)
        tracker.mlflow.log_artifacts(str(REPORT), artifact_path="report")
        tracker.end()
    finally:
        (run_dir / "mlflow_run_id").unlink(missing_ok=True)


if __name__ == "__main__":
    stage_main(run, __doc__)
