"""Scoring, clip by clip: every system's output and every timing system's notes on the test clips.

The values are kept per clip (:class:`Scores`), so that every cell of the table gets a clip-level
bootstrap interval and the comparisons get paired differences (:mod:`pipeline.evaluation.summary`).
The columns (docs/results.md, "The metrics", has a sentence on each):

    mel_mse              log-mel MSE of the system's own mel prediction vs the recording (Table 2)
    audio_mel_mse        log-mel MSE of the mel of the system's output audio vs the recording (end to end)
    mr_stft              multi-resolution STFT distance of the output audio to the recording
    note_onset_f1        transcription note F1, onsets within 50 ms and pitch within 50 cents (no offsets)
    note_f1              the same with offsets (within 20 % of the note or 50 ms)
    multipitch_accuracy  frame-level multi-pitch accuracy of the transcriber's frames (mono and poly clips)
    raw_pitch_accuracy   monophonic clips: share of score-sounding frames whose f0 is within 50 cents
    voicing_recall       monophonic clips: share of score-sounding frames the f0 tracker finds voiced
    onset_error_ms       timing systems: mean absolute onset error (ms, pooled over notes)
    duration_error_ms    timing systems: mean absolute duration error (ms, pooled over notes)

A metric that does not apply to a system (a timing error for a vocoder, a mel for the recording) has
no value and is shown as a dash; a system whose output is NaN, silent or of the wrong length fails
the stage, naming it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping
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
from pipeline.evaluation.systems import Batch, ClipOutput, System
from pipeline.evaluation.timing import TimingSystem, timing_errors
from pipeline.evaluation.transcription import decode_notes, multipitch_accuracy, note_metrics

COLUMNS = [
    "mel_mse",
    "audio_mel_mse",
    "mr_stft",
    "note_onset_f1",
    "note_f1",
    "multipitch_accuracy",
    "raw_pitch_accuracy",
    "voicing_recall",
    "onset_error_ms",
    "duration_error_ms",
]
HIGHER_IS_BETTER = {"note_onset_f1", "note_f1", "multipitch_accuracy", "raw_pitch_accuracy", "voicing_recall"}
# the metrics of the transcriber's notes: scored at the latency that fits each system (settle_latency),
# and reported by material too (their ceilings differ between monophonic and polyphonic clips)
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

    def add(self, system: str, metric: str, clip: str, value: float | None, weight: float = 1.0) -> None:
        """Record a clip's value; ``value`` is a per-clip *sum* over ``weight`` observations when weight != 1."""
        if value is not None and math.isfinite(value) and weight > 0:
            self.values[system][metric][clip] = float(value)
            self.weights[system][metric][clip] = float(weight)

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
    if float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) < SILENCE_RMS:
        raise PipelineError(f"{where}: output audio is silent (RMS below {SILENCE_RMS:g})", "evaluate")
    if out.mel is not None:
        mel = np.asarray(out.mel)
        if mel.shape != (n_mels, clip.frames):
            raise PipelineError(f"{where}: mel has shape {mel.shape}, expected ({n_mels}, {clip.frames})", "evaluate")
        if not np.isfinite(mel).all():
            raise PipelineError(f"{where}: mel holds NaN or infinite values", "evaluate")


class ClipScorer:
    """Scores one system's output on one clip with every audio metric (shared by all systems).

    The transcriber's notes lag the sound by a latency that depends on the attack (22-51 ms on
    bowed notes, ~0 on a hard attack), and the onset tolerance is only 50 ms: one fixed latency
    correction would score a system with other attacks as late or early throughout (measured: the
    source-filter vocoder's reconstruction 0.09 note-onset F1 with 50 ms, 0.78 with 30 ms). So the
    transcription metrics are computed for every latency in ``latencies`` and :func:`settle_latency`
    keeps, per system, the one that fits its notes best over all clips: a constant delay of a whole
    system is not an error of its performance.
    """

    def __init__(self, mel_config: MelConfig, transcriber, latencies: tuple[float, ...] = (0.05,)) -> None:
        self.mel_config = mel_config
        self.transcriber = transcriber
        self.latencies = tuple(latencies)
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

        c, cid = self.mel_config, clip.id
        check_output(system, out, clip, c.hop_length, c.n_mels)
        if out.mel is not None:
            scores.add(system, "mel_mse", cid, m.mel_mse(out.mel, reference_mel))
        scores.add(system, "audio_mel_mse", cid, m.audio_mel_mse(out.audio, reference_audio, c))
        scores.add(system, "mr_stft", cid, m.multi_resolution_stft_distance(out.audio, reference_audio))

        intervals, pitches = self.reference_notes(clip)
        posteriors = self.transcriber.posteriors(out.audio, c.sample_rate)  # the network runs once per output
        for latency in self.latencies:  # decoding is cheap (< 1 ms); the network is not re-run
            transcription = decode_notes(posteriors, replace(self.transcriber.decoding, latency_seconds=latency))
            scores.add(
                system,
                f"multipitch_accuracy@{latency:g}",
                cid,
                multipitch_accuracy(transcription, intervals, pitches, clip.tuning_cents),
            )
            # a note cut by the clip start has no onset in this clip: note_metrics leaves it (and what
            # the transcriber makes of its ringing on) out
            if np.any(clip.starts_in_clip):
                notes = note_metrics(
                    transcription,
                    intervals,
                    pitches,
                    clip.tuning_cents,
                    ref_onset_heard=np.asarray(clip.starts_in_clip, bool),
                )
                scores.add(system, f"note_onset_f1@{latency:g}", cid, notes["note_onset_f1"])
                scores.add(system, f"note_f1@{latency:g}", cid, notes["note_f1"])
        if not clip.polyphonic and len(pitches):
            f0 = f0_metrics(
                out.audio,
                c.sample_rate,
                c.hop_length,
                intervals,
                pitches,
                clip.tuning_cents,
                transcriber=self.transcriber,
                posteriors=posteriors,
            )
            scores.add(system, "raw_pitch_accuracy", cid, f0["raw_pitch_accuracy"])
            scores.add(system, "voicing_recall", cid, f0["voicing_recall"])


def settle_latency(scores: Scores, systems: list[str], latencies: tuple[float, ...]) -> dict[str, float]:
    """Per system, keep the transcription metrics at the latency with the best mean note-onset F1
    (ties: the first in ``latencies``); returns the latency (s) chosen for each system scored."""
    chosen = {}
    for system in systems:
        means = {
            lat: np.mean(list(scores.values[system][f"note_onset_f1@{lat:g}"].values()))
            for lat in latencies
            if scores.values[system].get(f"note_onset_f1@{lat:g}")
        }
        if not means:
            continue
        best = max(means, key=lambda lat: (means[lat], -latencies.index(lat)))
        chosen[system] = float(best)
        for metric in TRANSCRIPTION_METRICS:
            key = f"{metric}@{best:g}"
            scores.values[system][metric] = dict(scores.values[system].get(key, {}))
            scores.weights[system][metric] = dict(scores.weights[system].get(key, {}))
        for key in [k for k in scores.values[system] if "@" in k]:
            del scores.values[system][key]
            scores.weights[system].pop(key, None)
    return chosen


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
) -> tuple[Scores, dict[str, dict[str, ClipOutput]]]:
    """Every system on the clips ``order`` of ``clips`` (in batches of ``batch_size``), each clip scored
    by ``scorer``; returns the scores and, for the clip ids in ``kept_clips`` (the listening report's),
    every system's output: ``{clip id: {system: output}}``."""
    scores = Scores()
    kept: dict[str, dict[str, ClipOutput]] = {}

    def keep(system: str, clip: ClipInfo, out: ClipOutput) -> None:
        if clip.id in kept_clips:
            kept.setdefault(clip.id, {})[system] = out

    def batches() -> Iterator[tuple[Batch, list[ClipInfo]]]:
        for i in range(0, len(order), batch_size):
            chunk = order[i : i + batch_size]
            batch = collate_clips([clips[j] for j in chunk])
            yield batch, clip_infos(batch, [clips.refs[j] for j in chunk], polyphonic)

    n_batches = -(-len(order) // batch_size)
    with tqdm(total=n_batches * len(systems), desc="evaluate systems", unit="system-batch") as bar:
        run_systems(systems, batches(), scores, scorer, keep, bar)
    return scores, kept


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
