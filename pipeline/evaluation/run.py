"""The evaluate stage's work: every row of the table (:mod:`pipeline.evaluation.rows`) on the same test
clips of unseen pieces, the paper's Table 2 with 95 % intervals, a ceiling row (the recording), a floor
row (Griffin-Lim from the recording's mel) and the paired differences of the declared comparisons.

:func:`evaluate` composes it: the systems scored clip by clip and the timing systems on the clips'
notes (:mod:`pipeline.evaluation.scoring`), the table's numbers (:mod:`pipeline.evaluation.summary`),
its files and MLflow run (:mod:`pipeline.evaluation.tables`) and the listening report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from pipeline.config import Params
from pipeline.datasets.clips import ClipDataset
from pipeline.datasets.confidence import read_left_out
from pipeline.datasets.split import Split, read_split
from pipeline.errors import PipelineError
from pipeline.evaluation.report import write_report
from pipeline.evaluation.report_clips import report_choice, report_clips
from pipeline.evaluation.rows import TableRows, evaluated_models, table_rows
from pipeline.evaluation.scoring import ClipScorer, clip_id, score_systems, score_timing, settle_latency
from pipeline.evaluation.summary import by_material, compare, summarise, timing_summary
from pipeline.evaluation.systems import ModelFolder
from pipeline.evaluation.tables import TableOutputs, display_table, log_to_mlflow, write_tables
from pipeline.evaluation.transcription import Transcriber


@dataclass
class EvaluationClips:
    """The test split of the mel stage's features, as every system sees it."""

    index: pd.DataFrame  # the feature index (every recording)
    split: Split
    polyphonic: dict[str, bool]  # recording -> polyphonic
    clips: ClipDataset  # the test recordings' clips, with their audio
    order: list[int]  # the clips scored: the first ``evaluate.clips`` (0: all)

    def describe(self) -> str:
        pieces = sorted({str(p) for p in self.index.set_index("id").loc[self.split.test, "piece"]})
        return (
            f"{len(self.order)} test clips of {len(self.split.test)} recordings of {len(pieces)} unseen pieces "
            f"({', '.join(pieces)})"
        )


def read_clips(params: Params, features: Path, audio: Path) -> EvaluationClips:
    """The test clips of ``features`` (the mel stage's folder) with their audio from ``audio`` (the
    resample stage's); fails when the split leaves no test recordings."""
    index = pd.read_csv(features / "index.csv", dtype={"id": str})
    split = read_split(features, params.split).with_audio()  # annotation-only recordings have no sound to score
    if not split.test:
        raise PipelineError("the split leaves no test recordings to evaluate on (split.test_share)", features)
    polyphonic = {r: str(p).lower() in ("true", "1") for r, p in zip(index["id"], index["polyphonic"])}
    clips = ClipDataset(
        features, split.test, audio_dir=audio, clip_frames=params.mel.clip_frames, hop_length=params.mel.hop_length
    )
    order = list(range(len(clips)))[: params.evaluate.clips or None]
    return EvaluationClips(index, split, polyphonic, clips, order)


def evaluate(
    params: Params,
    features: Path,
    audio: Path,
    models: Path,
    outputs: TableOutputs,
    report: Path,
    rows: TableRows | None = None,
) -> None:
    """The whole evaluation of ``rows`` (default: :func:`~pipeline.evaluation.rows.table_rows`), those of
    them that apply to ``data.source``: ``features``/``audio`` (the mel and resample stages' folders), the
    trained models in ``models``/<name>; writes ``outputs`` and the listening report folder ``report``."""
    config = params.evaluate
    torch.manual_seed(0)
    test = read_clips(params, features, audio)
    rows = (table_rows(params) if rows is None else rows).for_source(params.data.source)
    model_hashes = evaluated_models(rows, models)  # before loading: a file replaced meanwhile reads as stale
    folder = ModelFolder(models)
    systems = {row.name: row.build(params, folder) for row in rows.systems}
    frame_seconds = params.mel.hop_length / params.mel.sample_rate
    transcription = asdict(config.transcription)
    latencies = tuple(transcription.pop("latencies"))
    scorer = ClipScorer(params.mel, Transcriber(**transcription), latencies)

    # ---- the systems, on the same clips
    shown = report_choice(test.clips, test.order, test.index, config.report_clips)
    scores, kept = score_systems(
        systems,
        test.clips,
        test.order,
        test.polyphonic,
        config.batch_size,
        scorer,
        kept_clips={clip_id(test.clips.refs[i]) for i in shown},
    )
    latency = settle_latency(scores, list(systems), latencies)

    # ---- the timing systems, on the notes starting in the test clips
    timing_systems = {row.name: row.build(params, folder) for row in rows.timing}
    starting = ClipDataset(
        features,
        test.split.test,
        notes="starting",
        clip_frames=params.mel.clip_frames,
        hop_length=params.mel.hop_length,
    )
    timing = score_timing(timing_systems, starting, config.batch_size, frame_seconds)
    timing.score(scores)

    names = rows.names
    table = summarise(scores, names, config.bootstrap_resamples, config.confidence, config.seed)
    diffs = compare(scores, rows.comparisons(), config.bootstrap_resamples, config.confidence, config.seed)
    materials = by_material(scores, names, test.polyphonic)
    write_tables(
        outputs,
        table,
        diffs,
        timing_summary(timing),
        len(test.order),
        test.split,
        config.confidence,
        materials,
        latency,
        models=model_hashes,
    )
    described = test.describe()
    write_report(
        report,
        display_table(table),
        report_clips(test.clips, shown, kept, test.polyphonic, params.mel, scores),
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
