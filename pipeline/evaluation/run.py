"""The evaluate stage's work: every row of the table (:mod:`pipeline.evaluation.rows`) on the same test
clips of unseen pieces, the paper's Table 2 with 95 % intervals, a ceiling row (the recording), a floor
row (Griffin-Lim from the recording's mel) and the paired differences of the declared comparisons.

:func:`evaluate` composes it: the systems scored clip by clip and the timing systems on the clips'
notes (:mod:`pipeline.evaluation.scoring`), the table's numbers (:mod:`pipeline.evaluation.summary`),
its files and MLflow run (:mod:`pipeline.evaluation.tables`) and the listening report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.config import Params
from pipeline.datasets.clips import ClipDataset
from pipeline.datasets.confidence import read_left_out
from pipeline.datasets.split import Split, read_split
from pipeline.errors import PipelineError
from pipeline.evaluation.latency import LatencyChoice, choose_latency
from pipeline.evaluation.realism import RealismReference
from pipeline.evaluation.report import write_report
from pipeline.evaluation.report_clips import report_choice, report_clips
from pipeline.evaluation.rows import TableRows, evaluated_models, table_rows
from pipeline.evaluation.scoring import (
    CLIP_METRICS,
    ClipScorer,
    audio_metrics,
    clip_id,
    realism_metric,
    score_systems,
    score_timing,
)
from pipeline.evaluation.summary import by_material, compare, summarise, timing_summary
from pipeline.evaluation.systems import ModelFolder
from pipeline.evaluation.tables import TableOutputs, display_table, log_to_mlflow, timing_sentence, write_tables
from pipeline.evaluation.transcription import Transcriber


@dataclass
class EvaluationClips:
    """The test split of the mel stage's features, as every system sees it."""

    index: pd.DataFrame  # the feature index (every recording)
    split: Split
    polyphonic: dict[str, bool]  # recording -> polyphonic
    clips: ClipDataset  # the test recordings' clips, with their audio
    order: list[int]  # the clips scored: the first ``evaluate.clips`` (0: all)
    # the test recordings the timing systems are scored on: with audio or annotation-only (their notes
    # and the human timing of the dataset's alignment are all timing needs)
    timing_recordings: list[str] = field(default_factory=list)

    def describe(self, players: str = "performers") -> str:
        """The clips scored: how many, of how many recordings and ``players``, of which unseen pieces."""
        scored = sorted({self.clips.refs[i].recording for i in self.order})  # evaluate.clips may cut the list
        test = self.index.set_index("id").loc[scored]
        pieces = sorted({str(p) for p in test["piece"]})
        count = test["performer"].nunique() if "performer" in test else 0
        return (
            f"{len(self.order)} test clips of {len(scored)} recordings ({count} {players}) of "
            f"{len(pieces)} unseen pieces ({', '.join(pieces)})"
        )


def corpus_title(source: str, described: str) -> str:
    """The table's and the report's title: the corpus (``data.source``) and what of it was scored."""
    return f"deep-performer on the {source} corpus: {described}"


def read_clips(params: Params, features: Path, audio: Path) -> EvaluationClips:
    """The test clips of ``features`` (the mel stage's folder) with their audio from ``audio`` (the
    resample stage's); fails when the split leaves no test recordings with audio."""
    index = pd.read_csv(features / "index.csv", dtype={"id": str})
    every = read_split(features, params.split)
    split = every.with_audio()  # annotation-only recordings have no sound to score
    if not split.test:
        raise PipelineError(
            "the split leaves no test recording with audio to evaluate on (split.test_share, split.test_pieces)",
            features,
        )
    polyphonic = {r: str(p).lower() in ("true", "1") for r, p in zip(index["id"], index["polyphonic"])}
    clips = ClipDataset(
        features, split.test, audio_dir=audio, clip_frames=params.mel.clip_frames, hop_length=params.mel.hop_length
    )
    order = list(range(len(clips)))[: params.evaluate.clips or None]
    return EvaluationClips(index, split, polyphonic, clips, order, timing_recordings=every.test)


def training_latency(params: Params, test: EvaluationClips, features: Path, audio: Path) -> LatencyChoice:
    """The transcriber latency every system is scored at, chosen on clips of the training recordings
    (:func:`pipeline.evaluation.latency.choose_latency`), never on the test clips."""
    train = test.split.train  # recordings with audio
    if not train:
        raise PipelineError("the split leaves no training recording with audio to choose the latency on", features)
    clips = ClipDataset(
        features, train, audio_dir=audio, clip_frames=params.mel.clip_frames, hop_length=params.mel.hop_length
    )
    config = params.evaluate.transcription
    return choose_latency(clips, config.latency_clips, tuple(config.latencies), transcriber(params), params.mel)


def realism_reference(params: Params, test: EvaluationClips, features: Path, audio: Path) -> RealismReference:
    """The realism score's reference: every clip of the training recordings with audio (never a test clip)."""
    clips = ClipDataset(
        features,
        test.split.train,
        audio_dir=audio,
        clip_frames=params.mel.clip_frames,
        hop_length=params.mel.hop_length,
    )
    sounds = [np.asarray(clips[i]["audio"]) for i in range(len(clips))]
    return RealismReference.fit(sounds, params.mel.sample_rate, params.evaluate.realism)


def transcriber(params: Params) -> Transcriber:
    """The note transcriber of params ``evaluate.transcription`` (its latency is chosen apart)."""
    settings = asdict(params.evaluate.transcription)
    for key in ("latencies", "latency_clips"):
        settings.pop(key)
    return Transcriber(**settings)


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
    latency = training_latency(params, test, features, audio)  # before any system is scored
    print(latency.describe())
    realism = realism_metric(realism_reference(params, test, features, audio))
    metrics = (audio_metrics, realism, *(g for g in CLIP_METRICS if g is not audio_metrics))
    scorer = ClipScorer(params.mel, transcriber(params), latency.latency, metrics)

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
        workers=config.workers,
    )

    # ---- the timing systems, on the notes starting in the test clips
    timing_systems = {row.name: row.build(params, folder) for row in rows.timing}
    starting = ClipDataset(
        features,
        test.timing_recordings or test.split.test,
        notes="starting",
        mel=False,
        clip_frames=params.mel.clip_frames,
        hop_length=params.mel.hop_length,
    )
    timing = score_timing(timing_systems, starting, config.batch_size, frame_seconds)
    timing.score(scores)

    audible = set(test.split.test)
    timing_set = {  # the timing rows' clips: every test recording, annotation-only ones too
        "clips": len(starting),
        "with_audio": sum(r in audible for r in starting.recordings),
        "annotation_only": sum(r not in audible for r in starting.recordings),
    }

    names = rows.names
    table = summarise(scores, names, config.bootstrap_resamples, config.confidence, config.seed)
    diffs = compare(scores, rows.comparisons(), config.bootstrap_resamples, config.confidence, config.seed)
    materials = by_material(scores, names, test.polyphonic)
    described = test.describe("violinists" if params.data.source == "bach-violin" else "performers")
    title = corpus_title(params.data.source, described)
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
        title=title,
        not_scored={name: scores.not_scored(name) for name in names},
        timing_set=timing_set,
    )
    write_report(
        report,
        display_table(table),
        report_clips(test.clips, shown, kept, test.polyphonic, params.mel, scores),
        title=title,
        mel=params.mel,
        notes=f"{data_source_note(params.data.source)} Every metric on every clip, mean ± half-width of the "
        f"{config.confidence:.0%} bootstrap interval; {latency.describe()}, every system scored at it. The "
        f"note and multi-pitch columns measure how closely the audio follows the score, not realism. "
        f"{timing_sentence(timing_set)}",
        left_out=read_left_out(features),
    )
    log_to_mlflow(params, table, outputs, report)
    print(title)
    print(display_table(table).to_string())
    print(f"{latency.describe()}; significant differences (paired bootstrap): {sum(d.significant for d in diffs)}")


def data_source_note(source: str) -> str:
    """What the report says of the corpus's numbers."""
    if source == "builtin":
        return (
            "Built-in corpus (FluidSynth renders with another soundfont and a performer model, so FluidSynth "
            "rows are strong here), CPU-sized training: not the paper's numbers."
        )
    return (
        f"The {source} corpus: real recordings of pieces no model has seen, CPU-sized training: not the "
        "paper's numbers. Realism: distance to the training recordings' sound (lower is more real)."
    )
