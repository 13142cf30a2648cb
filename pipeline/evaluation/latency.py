"""The transcriber's latency, chosen once on training recordings: the notes' lag behind the sound.

Basic Pitch's notes come out late by a latency that depends on the attack (22-51 ms on bowed notes,
~0 on a hard attack), and the note-onset tolerance is only 50 ms, so the latency subtracted from its
notes matters. Choosing it per system on the test clips would fit every row to the clips it is scored
on. Instead it is chosen once, before any system is scored: the transcriber runs on
``evaluate.transcription.latency_clips`` clips of the *training* recordings themselves (their audio and
aligned notes: the corpus's own attacks), and the candidate of ``evaluate.transcription.latencies``
with the best mean note-onset F1 there is the latency every system is scored at
(:class:`pipeline.evaluation.scoring.ClipScorer`). The table and the report say which, and on how many
clips (:meth:`LatencyChoice.describe`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipeline.config import MelConfig
from pipeline.datasets.clips import ClipDataset
from pipeline.errors import PipelineError
from pipeline.evaluation.transcription import Transcriber, decode_notes, note_metrics


@dataclass(frozen=True)
class LatencyChoice:
    """The latency chosen and what it was chosen on."""

    latency: float  # seconds, one of the candidates
    clips: int  # training clips it was chosen on
    recordings: int  # training recordings those clips come from
    f1: dict[float, float]  # candidate latency (s) -> mean note-onset F1 of the recordings on those clips

    def describe(self) -> str:
        # the grid's end chosen: the best latency may lie beyond it
        edge = (
            " (the largest candidate: widen evaluate.transcription.latencies)" if self.latency == max(self.f1) else ""
        )
        return (
            f"transcriber latency {self.latency * 1000:.0f} ms{edge}, chosen on {self.clips} training clips "
            f"({self.recordings} recordings; best mean note-onset F1 of the recordings themselves, "
            f"{self.f1[self.latency]:.3f})"
        )

    def to_json(self) -> dict:
        return {
            "latency_ms": round(self.latency * 1000),
            "clips": self.clips,
            "recordings": self.recordings,
            "note_onset_f1": {f"{lat * 1000:g}": round(f1, 4) for lat, f1 in self.f1.items()},
        }


def spread_clips(clips: ClipDataset, n: int) -> list[int]:
    """``n`` clip indices of ``clips`` spread evenly over all of them (every clip for ``n`` >= its
    length), so that the choice sees many recordings, not the first one's opening."""
    if n >= len(clips):
        return list(range(len(clips)))
    return sorted({int(i) for i in np.linspace(0, len(clips) - 1, n).round()})


def choose_latency(
    clips: ClipDataset, n_clips: int, latencies: tuple[float, ...], transcriber: Transcriber, mel: MelConfig
) -> LatencyChoice:
    """The candidate of ``latencies`` (s) with the best mean note-onset F1 of the recordings' own audio
    against their aligned notes, on ``n_clips`` clips of ``clips`` (the training recordings, with their
    audio; ties: the first candidate). The network runs once per clip; each candidate is a decoding."""
    if not latencies:
        raise PipelineError("evaluate.transcription.latencies is empty: no latency to choose from", clips.root)
    seconds = mel.hop_length / mel.sample_rate
    f1: dict[float, list[float]] = {float(lat): [] for lat in latencies}
    used: set[str] = set()
    for i in spread_clips(clips, n_clips):
        clip, ref = clips[i], clips.refs[i]
        onset, offset = clip["onset_frame"].astype(np.float64), clip["offset_frame"].astype(np.float64)
        heard = (onset > 0) | (ref.start == 0)  # a note cut by the clip start has no onset here
        if not heard.any():
            continue
        intervals = np.stack([onset, offset], axis=1) * seconds
        posteriors = transcriber.posteriors(clip["audio"], mel.sample_rate)
        for lat in f1:
            notes = decode_notes(posteriors, replace(transcriber.decoding, latency_seconds=lat))
            score = note_metrics(notes, intervals, clip["pitch"], float(clip["tuning_cents"]), ref_onset_heard=heard)
            f1[lat].append(score["note_onset_f1"])
        used.add(ref.recording)
    counted = len(next(iter(f1.values())))
    if not counted:
        raise PipelineError(
            "no training clip with audio and a note starting in it to choose the transcriber latency on", clips.root
        )
    means = {lat: float(np.mean(v)) for lat, v in f1.items()}
    best = max(means, key=lambda lat: (means[lat], -list(means).index(lat)))
    return LatencyChoice(best, counted, len(used), means)
