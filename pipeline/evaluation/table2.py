"""The evaluate stage's work: every system on the same test clips (unseen pieces); the paper's Table 2.

:func:`evaluate_table` builds the systems from the trained models, scores them clip by clip
(:mod:`pipeline.evaluation.evaluate`), adds the timing rows, and writes the table
(:mod:`pipeline.evaluation.tables`), the listening report and an MLflow run holding all of them.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from pipeline.config import MelConfig, Params
from pipeline.datasets.clips import ClipDataset, collate_clips
from pipeline.datasets.confidence import read_left_out
from pipeline.datasets.split import read_split
from pipeline.errors import PipelineError
from pipeline.evaluation import systems as sys_
from pipeline.evaluation.evaluate import (
    ClipScorer,
    Scores,
    Table,
    add_timing,
    clip_infos,
    compare,
    run_systems,
    settle_latency,
    summarise,
    timing_table,
)
from pipeline.evaluation.report import ReportClip, write_report
from pipeline.evaluation.tables import TableOutputs, by_material, display_table, slug, write_outputs
from pipeline.evaluation.timing import alignment_model_timing, constant_tempo, timing_rows
from pipeline.evaluation.transcription import Transcriber
from pipeline.io import file_md5
from pipeline.mel import log_mel
from pipeline.models.alignment import AlignmentModel, model_class_tempo
from pipeline.models.persistence import load_model

CEILING = "Recording"  # every audio metric on the recording itself: the best any system can score
FLOOR = "Griffin-Lim reconstruction"  # the recording's mel through Griffin-Lim: what a vocoder must beat
PAPER = "Deep Performer (HiFi-GAN V2)"  # the synthesis model with the paper's vocoder (models/hifigan_v2)
PAPER_VOCODER = "Vocoder reconstruction (HiFi-GAN V2)"
ABLATION_TITLES = {
    "no_notewise_pe": "w/o note-wise PE",
    "no_performer_embedding": "w/o performer embedding",
    "no_encoder": "w/o encoder",
    "no_harmonic_prior": "w/o harmonic prior",  # the paper's synthesis model (the prior is this project's)
}


def build_systems(params: Params, models: Path) -> dict:
    """Ordered systems: name -> callable(batch) -> [ClipOutput]. Fails naming a system without a model."""
    vocoder = sys_.load_vocoder(models)
    rate = params.mel.sample_rate
    systems = {"Deep Performer": sys_.synthesis_system(models, "synthesis", vocoder, "Deep Performer", rate)}
    for name in params.train_synthesis.ablations:
        title = ABLATION_TITLES.get(name, name)
        systems[title] = sys_.synthesis_system(models, f"synthesis_{name}", vocoder, title, rate)
    # the paper's system as published: the same synthesis model through the paper's HiFi-GAN V2
    paper_vocoder = sys_.load_vocoder(models, "hifigan_v2")
    systems[PAPER] = sys_.synthesis_system(models, "synthesis", paper_vocoder, PAPER, rate)
    systems["HiFi-GAN baseline"] = sys_.pianoroll_hifigan_system(models, params.mel)
    systems["PerformanceNet"] = sys_.performancenet_system(
        models, params.mel, params.train_performancenet.griffin_lim_iterations
    )
    systems["Vocoder reconstruction"] = sys_.vocoder_reconstruction(vocoder, rate)
    systems[PAPER_VOCODER] = sys_.vocoder_reconstruction(paper_vocoder, rate)
    systems[FLOOR] = sys_.griffin_lim_reconstruction(params.mel, params.train_performancenet.griffin_lim_iterations)
    systems[CEILING] = sys_.recording(params.mel.hop_length)
    return systems


def evaluated_models(params: Params, models: Path) -> dict[str, str]:
    """``{folder: md5 of <models>/<folder>/model.pt}`` for every model file the evaluation loads (the
    systems of :func:`build_systems` and the alignment model's timing), hashed before they are loaded.
    The metrics record them (``models``): `performer models register` refuses other models."""
    return {f: file_md5(models / f / "model.pt") for f in model_folders(params) if (models / f / "model.pt").is_file()}


def model_folders(params: Params) -> list[str]:
    """The folders under ``models`` the evaluation reads (each must be a dep of the evaluate stage)."""
    folders = ["alignment", "synthesis", *(f"synthesis_{name}" for name in params.train_synthesis.ablations)]
    return folders + ["hifigan", "hifigan_v2", "hifigan_baseline", "performancenet"]


def comparisons(systems: list[str]) -> list[tuple[str, str]]:
    """The paper's comparisons: Deep Performer vs each baseline and ablation; the alignment model vs
    constant tempo; and the vocoder against its floor."""
    pairs = [
        ("Deep Performer", s)
        for s in systems
        if s not in ("Deep Performer", "Vocoder reconstruction", FLOOR, CEILING, PAPER_VOCODER)
    ]
    return pairs + [
        ("Deep Performer", "Constant tempo"),
        ("Vocoder reconstruction", FLOOR),
        ("Vocoder reconstruction", PAPER_VOCODER),
    ]


def evaluate_table(
    params: Params, features: Path, audio: Path, models: Path, outputs: TableOutputs, report: Path
) -> None:
    """The whole evaluation: ``features``/``audio`` (the mel and resample stages' folders), the trained
    models in ``models``/<name>; writes ``outputs`` and the listening report folder ``report``."""
    config = params.evaluate
    torch.manual_seed(0)
    index = pd.read_csv(features / "index.csv", dtype={"id": str})
    split = read_split(features, params.split)
    test_ids = split.test
    if not test_ids:
        raise PipelineError("the split leaves no test recordings to evaluate on (split.test_share)", features)
    polyphonic = {r: str(p).lower() in ("true", "1") for r, p in zip(index["id"], index["polyphonic"])}
    clips = ClipDataset(
        features, test_ids, audio_dir=audio, clip_frames=params.mel.clip_frames, hop_length=params.mel.hop_length
    )
    order = list(range(len(clips)))[: config.clips or None]
    model_hashes = evaluated_models(params, models)  # before loading: a file replaced meanwhile reads as stale
    systems = build_systems(params, models)
    frame_seconds = params.mel.hop_length / params.mel.sample_rate
    transcription = asdict(params.evaluate.transcription)
    latencies = tuple(transcription.pop("latencies"))
    scorer = ClipScorer(params.mel, Transcriber(**transcription), latencies)

    # ---- synthesis systems, on the same clips
    scores = Scores()
    kept: dict[str, dict[str, sys_.ClipOutput]] = {}
    shown = report_choice(clips, order, index, config.report_clips)
    report_ids = {f"{clips.refs[i].recording}@{clips.refs[i].start}" for i in shown}

    def keep(system, clip, out):
        if clip.id in report_ids:
            kept.setdefault(clip.id, {})[system] = out

    def batches():
        for i in range(0, len(order), config.batch_size):
            chunk = order[i : i + config.batch_size]
            batch = collate_clips([clips[j] for j in chunk])
            yield batch, clip_infos(batch, [clips.refs[j] for j in chunk], polyphonic)

    n_batches = -(-len(order) // config.batch_size)
    with tqdm(total=n_batches * len(systems), desc="evaluate systems", unit="system-batch") as bar:
        run_systems(systems, batches(), scores, scorer, keep, bar)

    latency = settle_latency(scores, list(systems), latencies)

    # ---- timing: the alignment model vs constant tempo, on the test clips' notes
    alignment = load_model(sys_.require_model(models / "alignment" / "model.pt", "alignment model"), AlignmentModel)
    starting = ClipDataset(
        features, test_ids, notes="starting", clip_frames=params.mel.clip_frames, hop_length=params.mel.hop_length
    )
    timing_systems = ("Deep Performer", "Constant tempo", "Constant tempo (exact tempo)")
    errors: dict = {name: {"onset": [], "duration": []} for name in timing_systems}
    frame_rate = 1.0 / frame_seconds
    for i in range(0, len(starting), config.batch_size):
        chunk = range(i, min(len(starting), i + config.batch_size))
        batch = collate_clips([starting[j] for j in chunk])
        predictions = (
            alignment_model_timing(alignment, batch),
            constant_tempo(batch, frame_rate, qpm=model_class_tempo(alignment, batch["tempo_qpm"])),
            constant_tempo(batch, frame_rate),
        )
        clip_ends = np.cumsum(batch["note_mask"].sum(dim=1).numpy())[:-1]  # rows are the valid notes, clip after clip
        for name, (onset, duration) in zip(timing_systems, predictions):
            rows = timing_rows(onset, duration, batch)
            errors[name]["onset"].append(rows["onset"])
            errors[name]["duration"].append(rows["duration"])
            for j, clip_onset, clip_duration in zip(
                chunk, np.split(rows["onset"], clip_ends), np.split(rows["duration"], clip_ends)
            ):
                ref = starting.refs[j]
                add_timing(scores, name, f"{ref.recording}@{ref.start}", clip_onset, clip_duration, frame_seconds)
    timing = timing_table(errors, frame_seconds)
    names = list(systems) + ["Constant tempo", "Constant tempo (exact tempo)"]
    table = summarise(scores, names, config.bootstrap_resamples, config.confidence, config.seed)
    diffs = compare(scores, comparisons(list(systems)), config.bootstrap_resamples, config.confidence, config.seed)

    pieces = sorted({str(p) for p in index.set_index("id").loc[test_ids, "piece"]})
    described = (
        f"{len(order)} test clips of {len(test_ids)} recordings of {len(pieces)} unseen pieces ({', '.join(pieces)})"
    )
    materials = by_material(scores, names, polyphonic)
    write_outputs(
        outputs, table, diffs, timing, len(order), split, config.confidence, materials, latency, models=model_hashes
    )
    write_report(
        report,
        display_table(table),
        report_clips(clips, shown, kept, polyphonic, params.mel, scores),
        title="deep-performer: test clips (unseen pieces)",
        mel=params.mel,
        notes=f"{described}; every metric on every clip, mean ± half-width of the "
        f"{config.confidence:.0%} bootstrap interval. Built-in corpus, CPU-sized training: "
        "not the paper's numbers.",
        left_out=read_left_out(features),
    )
    log_to_mlflow(params, table, outputs, report)
    print(display_table(table).to_string())
    print(
        f"{described}; significant differences (paired bootstrap): {sum(d.significant for d in diffs)} of {len(diffs)}"
    )


def report_choice(clips: ClipDataset, order: list[int], index: pd.DataFrame, count: int) -> list[int]:
    """``count`` clips of ``order`` for the listening report, taken from each test piece in turn (the
    first clip of each piece, then the second, ...), so the report plays every kind of test material,
    not ``count`` neighbouring clips of one recording."""
    piece_of = dict(zip(index["id"].astype(str), index["piece"].astype(str)))
    by_piece: dict[str, list[int]] = {}
    for i in order:
        by_piece.setdefault(piece_of.get(clips.refs[i].recording, ""), []).append(i)
    queues = [by_piece[p] for p in sorted(by_piece)]
    chosen: list[int] = []
    for rank in range(max((len(q) for q in queues), default=0)):
        chosen += [q[rank] for q in queues if rank < len(q)]
    return chosen[:count]


REPORT_SCORES = {"note_onset_f1": "note-onset F1", "raw_pitch_accuracy": "raw pitch"}  # shown on each card


def report_clips(
    clips: ClipDataset,
    chosen: list[int],
    kept: dict,
    polyphonic: dict,
    mel_config: MelConfig,
    scores: Scores | None = None,
) -> list[ReportClip]:
    """The report's clips: every system's audio beside its own mel (or, without one, its audio's mel),
    with its scores on this clip (:data:`REPORT_SCORES`, from ``scores``)."""
    out = []
    seconds_per_frame = mel_config.hop_length / mel_config.sample_rate
    for i in chosen:
        ref = clips.refs[i]
        item = clips[i]
        cid = f"{ref.recording}@{ref.start}"
        outputs = {
            name: sys_.ClipOutput(
                audio=result.audio, mel=result.mel if result.mel is not None else log_mel(result.audio, mel_config)
            )
            for name, result in kept.get(cid, {}).items()
        }
        order = ["Recording"] + [n for n in outputs if n != "Recording"]
        out.append(
            ReportClip(
                id=cid,
                title=f"{ref.recording}, from {ref.start * seconds_per_frame:.1f} s"
                f"{' (polyphonic)' if polyphonic[ref.recording] else ''}",
                pitch=item["pitch"],
                onset_frame=item["onset_frame"],
                offset_frame=item["offset_frame"],
                outputs={n: outputs[n] for n in order if n in outputs},
                reference=CEILING if CEILING in outputs else None,
                scores={
                    n: {
                        label: scores.values[n][metric][cid]
                        for metric, label in REPORT_SCORES.items()
                        if cid in scores.values[n].get(metric, {})
                    }
                    for n in order
                    if scores is not None and n in outputs
                },
            )
        )
    return out


MATERIAL_METRICS = ("note_onset_f1", "note_f1", "multipitch_accuracy")


def log_to_mlflow(params: Params, table: Table, outputs: TableOutputs, report: Path) -> None:
    from pipeline.tracking import MlflowTracker, dvc_input_hashes

    tags = {"stage": "evaluate", **{f"dvc_dep:{p}": h for p, h in dvc_input_hashes("evaluate").items()}}
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
