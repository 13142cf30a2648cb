"""Scoring, clip by clip: every system's output and every timing system's notes on the test clips.

The values are kept per clip (:class:`Scores`), so that every cell of the table gets a clip-level
bootstrap interval and the comparisons get paired differences (:mod:`pipeline.evaluation.summary`).
The columns (docs/results.md, "The metrics", has a sentence on each; :data:`COLUMN_TITLES` are the
table's titles). The transcription columns measure how closely the audio follows the *score*
(basic-pitch's notes against the aligned score notes), not how real it sounds: a clean synthesis of
the score beats a recording with ornaments, double-stop spreads or a room.

    mel_mse              log-mel MSE of the system's own mel prediction vs the recording (Table 2)
    audio_mel_mse        log-mel MSE of the mel of the system's output audio vs the recording (end to end)
    realism              distance of the clip's frames to real recordings of the instrument (the training
                         split's; :mod:`pipeline.evaluation.realism`): no recording of its own is needed,
                         and a cleaner-than-real output cannot beat a real one
    mr_stft              multi-resolution STFT distance of the output audio to the recording
    note_onset_f1        score following: note F1 of the transcription, onsets within 50 ms and pitch
                         within 50 cents (no offsets)
    note_f1              the same with offsets (within 20 % of the note or 50 ms)
    multipitch_accuracy  score following: frame-level multi-pitch accuracy of the transcriber's frames
    raw_pitch_accuracy   frames where exactly one score note sounds: share whose f0 is within 50 cents
    voicing_recall       the same frames: share the f0 tracker finds voiced
    note_pitch_accuracy  notes that sound alone somewhere: share whose median f0 there is within 50 cents
    onset_error_ms       timing systems: mean absolute onset error (ms, pooled over notes)
    duration_error_ms    timing systems: mean absolute duration error (ms, pooled over notes)

Every system is transcribed at one latency (the notes' lag behind the sound), chosen beforehand on
training recordings (:mod:`pipeline.evaluation.latency`), never on the clips scored.

A clip metric that cannot be computed on a clip (no note starts in it, no frame where one note
sounds alone) is recorded with its reason (:meth:`Scores.skip`; metrics/evaluate.json lists them); a
metric that does not apply to a system (a timing error for a vocoder, a mel for the recording) has
no value and is shown as a dash; a system whose output is NaN, silent or of the wrong length fails
the stage, naming it. The per-clip metrics are groups of :data:`ClipMetric` functions
(:data:`CLIP_METRICS`): a new metric is one more function of a :class:`ClipContext`.
"""

from __future__ import annotations

import math
import multiprocessing
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm import tqdm

from pipeline.config import MelConfig
from pipeline.datasets.clips import ClipDataset, collate_clips
from pipeline.errors import PipelineError
from pipeline.evaluation import metrics as m
from pipeline.evaluation.bootstrap import Interval, bootstrap_mean, cell_rng, paired_difference
from pipeline.evaluation.pitch import f0_metrics
from pipeline.evaluation.realism import RealismReference, TooShortForRealism
from pipeline.evaluation.systems import Batch, ClipOutput, System
from pipeline.evaluation.timing import TimingSystem, timing_errors
from pipeline.evaluation.transcription import (
    Posteriors,
    Transcriber,
    Transcription,
    decode_notes,
    forget_sessions,
    multipitch_accuracy,
    note_metrics,
)

COLUMNS = [
    "mel_mse",
    "audio_mel_mse",
    "realism",
    "mr_stft",
    "note_onset_f1",
    "note_f1",
    "multipitch_accuracy",
    "raw_pitch_accuracy",
    "voicing_recall",
    "note_pitch_accuracy",
    "onset_error_ms",
    "duration_error_ms",
]
# the table's column titles: what each metric measures (metrics/evaluate.json keeps the keys above)
COLUMN_TITLES = {
    "mel_mse": "mel MSE (own mel)",
    "audio_mel_mse": "mel MSE (audio)",
    "realism": "realism (distance to real recordings)",
    "mr_stft": "MR-STFT distance",
    "note_onset_f1": "score-following note-onset F1",
    "note_f1": "score-following note F1 (with offsets)",
    "multipitch_accuracy": "score-following frame multi-pitch accuracy",
    "raw_pitch_accuracy": "raw pitch accuracy (single-note frames)",
    "voicing_recall": "voicing recall (single-note frames)",
    "note_pitch_accuracy": "note pitch accuracy (single-note notes)",
    "onset_error_ms": "onset error (ms)",
    "duration_error_ms": "duration error (ms)",
}
HIGHER_IS_BETTER = {
    "note_onset_f1",
    "note_f1",
    "multipitch_accuracy",
    "raw_pitch_accuracy",
    "voicing_recall",
    "note_pitch_accuracy",
}
# the metrics of the transcriber's notes, reported by material too (their ceilings differ between
# monophonic and polyphonic clips)
TRANSCRIPTION_METRICS = ("note_onset_f1", "note_f1", "multipitch_accuracy")
SILENCE_RMS = 1e-5  # -100 dBFS: an output this quiet over a whole clip is silence, not a quiet performance


@dataclass
class ClipInfo:
    id: str  # "<recording>@<start frame>"
    polyphonic: bool
    frames: int
    pitch: np.ndarray
    onset_frame: np.ndarray  # clip-relative frames of the sounding notes
    offset_frame: np.ndarray
    starts_in_clip: np.ndarray  # bool: the note's onset lies inside the clip (not cut by its start)
    tuning_cents: float = 0.0


@dataclass
class Scores:
    """Per-system, per-metric values keyed by clip id (plus a weight for pooled metrics)."""

    values: dict[str, dict[str, dict[str, float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict))
    )
    weights: dict[str, dict[str, dict[str, float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict))
    )
    # system -> metric -> clip -> why the metric has no value on that clip
    reasons: dict[str, dict[str, dict[str, str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict))
    )

    def add(self, system: str, metric: str, clip: str, value: float | None, weight: float = 1.0) -> None:
        """Record a clip's value; ``value`` is a per-clip *sum* over ``weight`` observations when weight != 1."""
        if value is not None and math.isfinite(value) and weight > 0:
            self.values[system][metric][clip] = float(value)
            self.weights[system][metric][clip] = float(weight)

    def skip(self, system: str, metric: str, clip: str, reason: str) -> None:
        """Record that ``metric`` has no value for ``system`` on ``clip``, and why."""
        self.reasons[system][metric][clip] = reason

    def not_scored(self, system: str) -> dict[str, dict[str, int]]:
        """``{metric: {reason: clips}}``: the clips each metric of ``system`` has no value on, by reason."""
        return {
            metric: dict(sorted(Counter(by_clip.values()).items()))
            for metric, by_clip in sorted(self.reasons[system].items())
            if by_clip
        }

    def interval(self, system: str, metric: str, resamples: int, confidence: float, seed: int) -> Interval:
        clips = sorted(self.values[system][metric])
        values = [self.values[system][metric][c] for c in clips]
        weights = [self.weights[system][metric][c] for c in clips]
        return bootstrap_mean(values, weights, resamples, confidence, cell_rng(seed, system, metric))

    def difference(self, a: str, b: str, metric: str, resamples: int, confidence: float, seed: int) -> Interval:
        return paired_difference(
            self.values[a][metric],
            self.values[b][metric],
            self.weights[a][metric],
            self.weights[b][metric],
            resamples,
            confidence,
            cell_rng(seed, a, b, metric),
        )


def check_output(system: str, out: ClipOutput, clip: ClipInfo, hop: int, n_mels: int) -> None:
    """Fail naming ``system`` when its output cannot be scored honestly."""
    where = f"system {system!r}, clip {clip.id}"
    audio = np.asarray(out.audio)
    if audio.ndim != 1 or len(audio) != clip.frames * hop:
        raise PipelineError(f"{where}: output has {audio.shape} samples, expected ({clip.frames * hop},)", "evaluate")
    if not np.isfinite(audio).all():
        raise PipelineError(f"{where}: output audio holds NaN or infinite samples", "evaluate")
    if not out.may_be_silent and float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) < SILENCE_RMS:
        raise PipelineError(f"{where}: output audio is silent (RMS below {SILENCE_RMS:g})", "evaluate")
    if out.mel is not None:
        mel = np.asarray(out.mel)
        if mel.shape != (n_mels, clip.frames):
            raise PipelineError(f"{where}: mel has shape {mel.shape}, expected ({n_mels}, {clip.frames})", "evaluate")
        if not np.isfinite(mel).all():
            raise PipelineError(f"{where}: mel holds NaN or infinite values", "evaluate")


@dataclass(frozen=True)
class NotScored:
    """A clip metric's answer where it cannot be computed on the clip: the reason, as the JSON says it."""

    reason: str


@dataclass(frozen=True)
class Pooled:
    """A clip metric's answer that is pooled over observations (notes), not averaged over clips:
    the clip's sum and its number of observations."""

    total: float
    count: float


@dataclass(frozen=True)
class ClipContext:
    """What every clip metric sees of one system's output on one clip."""

    out: ClipOutput
    clip: ClipInfo
    reference_audio: np.ndarray  # (samples,) the recording's clip
    reference_mel: np.ndarray  # (n_mels, frames) the recording's log-mel
    mel_config: MelConfig
    intervals: np.ndarray  # (N, 2) the clip's score notes, seconds from the clip start (aligned)
    pitches: np.ndarray  # (N,) MIDI
    posteriors: Posteriors  # the transcriber's network on ``out.audio`` (run once per output)
    transcription: Transcription  # its notes decoded at the chosen latency
    transcriber: Transcriber


Value = float | Pooled | NotScored
ClipMetric = Callable[[ClipContext], dict[str, Value]]  # one group of columns of one clip


def audio_metrics(ctx: ClipContext) -> dict[str, Value]:
    """The recording-distance columns: mel MSE (own mel and audio's mel) and the MR-STFT distance."""
    own = (
        m.mel_mse(ctx.out.mel, ctx.reference_mel)
        if ctx.out.mel is not None
        else NotScored("the system makes no mel of its own")
    )
    return {
        "mel_mse": own,
        "audio_mel_mse": m.audio_mel_mse(ctx.out.audio, ctx.reference_audio, ctx.mel_config),
        "mr_stft": m.multi_resolution_stft_distance(ctx.out.audio, ctx.reference_audio),
    }


def score_following_metrics(ctx: ClipContext) -> dict[str, Value]:
    """The transcription columns: how closely the audio's notes follow the clip's score notes."""
    clip = ctx.clip
    out: dict[str, Value] = {
        "multipitch_accuracy": multipitch_accuracy(ctx.transcription, ctx.intervals, ctx.pitches, clip.tuning_cents)
    }
    # a note cut by the clip start has no onset in this clip: note_metrics leaves it (and what the
    # transcriber makes of its ringing on) out
    if not np.any(clip.starts_in_clip):
        out["note_onset_f1"] = out["note_f1"] = NotScored("no note starts in the clip")
        return out
    notes = note_metrics(
        ctx.transcription,
        ctx.intervals,
        ctx.pitches,
        clip.tuning_cents,
        ref_onset_heard=np.asarray(clip.starts_in_clip, bool),
    )
    return {**out, "note_onset_f1": notes["note_onset_f1"], "note_f1": notes["note_f1"]}


def pitch_metrics(ctx: ClipContext) -> dict[str, Value]:
    """The f0 columns, on the frames (and notes) where exactly one score note sounds: every clip with
    such a frame is scored, double stops or not."""
    c = ctx.mel_config
    f0 = f0_metrics(
        ctx.out.audio,
        c.sample_rate,
        c.hop_length,
        ctx.intervals,
        ctx.pitches,
        ctx.clip.tuning_cents,
        transcriber=ctx.transcriber,
        posteriors=ctx.posteriors,
    )
    if not math.isfinite(f0["raw_pitch_accuracy"]):
        none = NotScored("no frame where exactly one score note sounds")
        return {"raw_pitch_accuracy": none, "voicing_recall": none, "note_pitch_accuracy": none}
    return {
        "raw_pitch_accuracy": f0["raw_pitch_accuracy"],
        "voicing_recall": f0["voicing_recall"],
        "note_pitch_accuracy": Pooled(f0["note_pitch_right"], f0["note_pitch_notes"]),
    }


def realism_metric(reference: RealismReference) -> ClipMetric:
    """The realism column against ``reference`` (fitted on the training split's recordings)."""

    def realism(ctx: ClipContext) -> dict[str, Value]:
        try:
            value = reference.score(ctx.out.audio, ctx.mel_config.sample_rate, where=f"clip {ctx.clip.id}")
        except TooShortForRealism as err:  # a recording's short last clip: too few loud frames
            return {"realism": NotScored(f"too few frames for the realism score ({err})")}
        return {"realism": value}

    return realism


# the per-clip metric groups every system's output is scored with, in column order (the realism
# column, which needs a reference fitted on training recordings, is added by the evaluation)
CLIP_METRICS: tuple[ClipMetric, ...] = (audio_metrics, score_following_metrics, pitch_metrics)


class ClipScorer:
    """Scores one system's output on one clip with every clip metric of ``metrics`` (shared by all
    systems).

    The transcriber's notes lag the sound by a latency that depends on the attack (22-51 ms on bowed
    notes, ~0 on a hard attack), and the onset tolerance is only 50 ms. The latency is one number per
    transcriber, chosen on training recordings (:func:`pipeline.evaluation.latency.choose_latency`),
    so no system's score is fitted on the clips it is scored on.
    """

    def __init__(
        self,
        mel_config: MelConfig,
        transcriber: Transcriber,
        latency: float,
        metrics: Sequence[ClipMetric] = CLIP_METRICS,
    ) -> None:
        self.mel_config = mel_config
        self.transcriber = transcriber
        self.latency = float(latency)
        self.decoding = replace(transcriber.decoding, latency_seconds=self.latency)
        self.metrics = tuple(metrics)
        self.seconds = mel_config.hop_length / mel_config.sample_rate

    def reference_notes(self, clip: ClipInfo) -> tuple[np.ndarray, np.ndarray]:
        intervals = np.stack([clip.onset_frame, clip.offset_frame], axis=1).astype(np.float64) * self.seconds
        return intervals.reshape(-1, 2), np.asarray(clip.pitch, np.float64)

    def __call__(
        self,
        scores: Scores,
        system: str,
        out: ClipOutput,
        clip: ClipInfo,
        reference_audio: np.ndarray,
        reference_mel: np.ndarray,
    ) -> None:
        c = self.mel_config
        check_output(system, out, clip, c.hop_length, c.n_mels)
        intervals, pitches = self.reference_notes(clip)
        posteriors = self.transcriber.posteriors(out.audio, c.sample_rate)
        ctx = ClipContext(
            out,
            clip,
            reference_audio,
            reference_mel,
            c,
            intervals,
            pitches,
            posteriors,
            decode_notes(posteriors, self.decoding),
            self.transcriber,
        )
        for group in self.metrics:
            for metric, value in group(ctx).items():
                record(scores, system, metric, clip.id, value)


def record(scores: Scores, system: str, metric: str, clip: str, value: Value) -> None:
    """One clip metric's answer into ``scores``: a value, a pooled sum, or the reason there is none."""
    if isinstance(value, NotScored):
        scores.skip(system, metric, clip, value.reason)
    elif isinstance(value, Pooled):
        if value.count > 0:
            scores.add(system, metric, clip, value.total, weight=value.count)
        else:
            scores.skip(system, metric, clip, "nothing to pool on the clip")
    elif not math.isfinite(value):
        scores.skip(system, metric, clip, "no score note to compare with")
    else:
        scores.add(system, metric, clip, value)


def clip_id(ref) -> str:
    """The id of the clip of a ``ClipDataset`` ref: ``<recording>@<start frame>``."""
    return f"{ref.recording}@{ref.start}"


def clip_infos(batch: dict[str, torch.Tensor], refs, polyphonic: dict[str, bool]) -> list[ClipInfo]:
    """What the metrics need of each clip of a ``collate_clips`` batch (its tuning from the batch, where
    the clips carry audio and so their recording's ``tuning_cents``)."""
    infos = []
    for i, ref in enumerate(refs):
        mask = batch["note_mask"][i]
        on = batch["onset_frame"][i][mask].numpy()
        infos.append(
            ClipInfo(
                id=clip_id(ref),
                polyphonic=bool(polyphonic[ref.recording]),
                frames=ref.frames,
                pitch=batch["pitch"][i][mask].numpy(),
                onset_frame=on,
                offset_frame=batch["offset_frame"][i][mask].numpy(),
                # a note cut by the clip start sits at frame 0 but did not start there (its onset is not heard)
                starts_in_clip=(on > 0) | (ref.start == 0),
                tuning_cents=float(batch["tuning_cents"][i]) if "tuning_cents" in batch else 0.0,
            )
        )
    return infos


def run_systems(
    systems: Mapping[str, System],
    batches,
    scores: Scores,
    scorer: ClipScorer,
    keep: Callable[[str, ClipInfo, ClipOutput], None] | None = None,
    progress=None,
) -> int:
    """Run every system on every batch of ``batches`` ((batch, infos) pairs) and score its clips."""
    seen = 0
    hop = scorer.mel_config.hop_length
    for batch, infos in batches:
        reference = batch["audio"].numpy()
        for name, system in systems.items():
            outputs = system(batch)
            if len(outputs) != len(infos):
                raise PipelineError(
                    f"system {name!r} returned {len(outputs)} outputs for {len(infos)} clips", "evaluate"
                )
            for j, (out, clip) in enumerate(zip(outputs, infos)):
                ref_audio = reference[j, : clip.frames * hop]
                ref_mel = batch["mel"][j, :, : clip.frames].numpy()
                scorer(scores, name, out, clip, ref_audio, ref_mel)
                if keep is not None:
                    keep(name, clip, out)
            if progress is not None:
                progress.update(1)
        seen += len(infos)
    return seen


def score_systems(
    systems: Mapping[str, System],
    clips: ClipDataset,
    order: list[int],
    polyphonic: dict[str, bool],
    batch_size: int,
    scorer: ClipScorer,
    kept_clips: Collection[str] = (),
    workers: int = 1,
) -> tuple[Scores, dict[str, dict[str, ClipOutput]]]:
    """Every system on the clips ``order`` of ``clips`` (in batches of ``batch_size``), each clip scored
    by ``scorer``; returns the scores and, for the clip ids in ``kept_clips`` (the listening report's),
    every system's output: ``{clip id: {system: output}}``.

    ``workers`` > 1 scores the systems in that many processes, a system per task. Every system and
    metric is deterministic and owns its inputs, so the scores are the same for any number of workers
    (tests/test_evaluation_rows.py); the evaluate stage runs alone after training, and one process
    left the other cores idle for most of its minutes."""
    n_batches = -(-len(order) // batch_size)
    job = _SystemJob(clips, order, polyphonic, batch_size, scorer, frozenset(kept_clips))
    names = list(systems)
    workers = max(1, min(workers, len(names)))
    if workers > 1 and torch.cuda.is_initialized():  # forked children cannot use the parent's CUDA context
        print(f"evaluate: the systems hold CUDA models, so one process scores them (not evaluate.workers={workers})")
        workers = 1
    results: dict[str, _SystemResult] = {}
    with tqdm(total=n_batches * len(names), desc="evaluate systems", unit="system-batch") as bar:
        if workers == 1:
            for name in names:
                results[name] = job(name, systems[name], bar)
        else:
            global _FORKED  # the children inherit the systems (models loaded) and the scorer by fork
            _FORKED = (job, dict(systems), workers)
            try:
                context = multiprocessing.get_context("fork")
                with context.Pool(workers, initializer=_forked_worker) as pool:
                    for name, result in pool.imap_unordered(_score_forked, names):
                        results[name] = result
                        bar.update(n_batches)
            finally:
                _FORKED = None
    scores = Scores()
    kept: dict[str, dict[str, ClipOutput]] = {}
    for name in names:  # in the systems' order, whatever order they finished in
        result = results[name]
        for table, part in ((scores.values, result.values), (scores.weights, result.weights)):
            for metric, by_clip in part.items():
                table[name][metric].update(by_clip)
        for metric, why in result.reasons.items():
            scores.reasons[name][metric].update(why)
        for clip, out in result.kept.items():
            kept.setdefault(clip, {})[name] = out
    return scores, kept


@dataclass
class _SystemResult:
    """One system's scores (``metric -> clip -> value``, plain dicts: they cross a process boundary)."""

    values: dict[str, dict[str, float]]
    weights: dict[str, dict[str, float]]
    reasons: dict[str, dict[str, str]]
    kept: dict[str, ClipOutput]  # clip id -> the output, for the listening report's clips


@dataclass
class _SystemJob:
    """Scores one system on every test clip: the work of one task of :func:`score_systems`."""

    clips: ClipDataset
    order: list[int]
    polyphonic: dict[str, bool]
    batch_size: int
    scorer: ClipScorer
    kept_clips: frozenset[str]

    def batches(self) -> Iterator[tuple[Batch, list[ClipInfo]]]:
        for i in range(0, len(self.order), self.batch_size):
            chunk = self.order[i : i + self.batch_size]
            batch = collate_clips([self.clips[j] for j in chunk])
            yield batch, clip_infos(batch, [self.clips.refs[j] for j in chunk], self.polyphonic)

    def __call__(self, name: str, system: System, progress=None) -> _SystemResult:
        scores = Scores()
        kept: dict[str, ClipOutput] = {}

        def keep(_: str, clip: ClipInfo, out: ClipOutput) -> None:
            if clip.id in self.kept_clips:
                kept[clip.id] = out

        run_systems({name: system}, self.batches(), scores, self.scorer, keep, progress)

        def plain(table: dict) -> dict:
            return {metric: dict(by_clip) for metric, by_clip in table[name].items()}

        return _SystemResult(plain(scores.values), plain(scores.weights), plain(scores.reasons), kept)


# (job, systems, workers) of the score_systems call in progress, for its forked workers
_FORKED: tuple[_SystemJob, dict[str, System], int] | None = None


def _forked_worker() -> None:
    """A worker's share of the cores (the parent's threads split between the workers), and its own
    transcriber session."""
    assert _FORKED is not None
    torch.set_num_threads(max(1, torch.get_num_threads() // _FORKED[2]))
    forget_sessions()


def _score_forked(name: str) -> tuple[str, _SystemResult]:
    assert _FORKED is not None
    job, systems, _ = _FORKED
    return name, job(name, systems[name])


@dataclass
class TimingErrors:
    """Each timing system's absolute per-note errors (frames), clip by clip: the one record of timing
    errors that the table's timing cells (:meth:`score`) and the timing plot
    (:func:`pipeline.evaluation.summary.timing_summary`) are computed from."""

    frame_seconds: float
    # system -> [(clip id, onset errors, duration errors)], the clips in the order they were scored
    clips: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = field(default_factory=dict)

    def add(self, system: str, clip: str, onset: np.ndarray, duration: np.ndarray) -> None:
        self.clips.setdefault(system, []).append((clip, onset, duration))

    def score(self, scores: Scores) -> None:
        """Each clip's errors into ``scores`` as per-clip sums in ms over its notes (a pooled mean)."""
        ms = self.frame_seconds * 1000.0
        for system, clips in self.clips.items():
            for clip, onset, duration in clips:
                n = len(onset)
                if n:
                    scores.add(system, "onset_error_ms", clip, float(np.abs(onset).sum() * ms), weight=n)
                    scores.add(system, "duration_error_ms", clip, float(np.abs(duration).sum() * ms), weight=n)


def score_timing(
    systems: Mapping[str, TimingSystem], clips: ClipDataset, batch_size: int, frame_seconds: float
) -> TimingErrors:
    """Every timing system's onsets and durations for the notes of ``clips`` (a ``notes="starting"``
    dataset), in batches of ``batch_size``: the errors of each note, kept per clip."""
    errors = TimingErrors(frame_seconds, {name: [] for name in systems})
    for i in range(0, len(clips), batch_size):
        chunk = range(i, min(len(clips), i + batch_size))
        batch = collate_clips([clips[j] for j in chunk])
        clip_ends = np.cumsum(batch["note_mask"].sum(dim=1).numpy())[:-1]  # rows are the valid notes, clip after clip
        for name, system in systems.items():
            onset, duration = timing_errors(*system(batch), batch)
            for j, clip_onset, clip_duration in zip(chunk, np.split(onset, clip_ends), np.split(duration, clip_ends)):
                errors.add(name, clip_id(clips.refs[j]), clip_onset, clip_duration)
    return errors
