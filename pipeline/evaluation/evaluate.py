"""The evaluate stage's work: every system on the same held-out clips, the paper's Table 2 layout.

Rows are systems, columns metrics (see the README for a sentence on each):

    mel_mse          log-mel MSE of the system's own mel prediction vs the recording (Table 2)
    audio_mel_mse    log-mel MSE of the mel of the system's output audio vs the recording (end to end)
    mr_stft          multi-resolution STFT distance of the output audio to the recording
    pitch_accuracy   share of voiced frames within 50 cents of a sounding score pitch (monophonic clips)
    onset_f1         note-onset F1 (50 ms) of onsets detected in the output vs the aligned score
    onset_error_ms   alignment: mean absolute onset error of the timing system (ms)
    duration_error_ms alignment: mean absolute duration error (ms)

A metric that does not apply to a system (a timing error for a vocoder, a mel for the recording)
is NaN and shown as a dash; a system that cannot be run fails the stage.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from pipeline.evaluation import metrics as m
from pipeline.evaluation.systems import ClipOutput

COLUMNS = ["mel_mse", "audio_mel_mse", "mr_stft", "pitch_accuracy", "onset_f1", "onset_error_ms", "duration_error_ms"]


@dataclass
class ClipInfo:
    id: str  # "<recording>@<start frame>"
    polyphonic: bool
    frames: int
    pitch: np.ndarray
    onset_frame: np.ndarray  # clip-relative frames of the sounding notes
    offset_frame: np.ndarray
    starts_in_clip: np.ndarray  # bool: the note's onset lies inside the clip (not cut by its start)


@dataclass
class Scores:
    """Per-system lists of per-clip values, averaged into the table."""

    values: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))

    def add(self, system: str, metric: str, value: float) -> None:
        if value is not None and math.isfinite(value):
            self.values[system][metric].append(float(value))

    def table(self, systems: list[str]) -> pd.DataFrame:
        rows = {s: {c: float(np.mean(self.values[s][c])) if self.values[s][c] else float("nan") for c in COLUMNS}
                for s in systems}
        return pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS)


def score_clip(scores: Scores, system: str, out: ClipOutput, clip: ClipInfo, reference_audio: np.ndarray,
               reference_mel: np.ndarray, heavy: bool, sample_rate: int = 16000, hop: int = 256) -> None:
    """Add one clip's metrics of one system's output to ``scores``."""
    if out.mel is not None:
        scores.add(system, "mel_mse", m.mel_mse(out.mel, reference_mel))
    scores.add(system, "audio_mel_mse", m.audio_mel_mse(out.audio, reference_audio))
    if not heavy:
        return
    scores.add(system, "mr_stft", m.multi_resolution_stft_distance(out.audio, reference_audio))
    seconds = hop / sample_rate
    if not clip.polyphonic:
        pitch = m.pitch_accuracy(out.audio, clip.pitch, clip.onset_frame * seconds, clip.offset_frame * seconds,
                                 sample_rate=sample_rate)
        scores.add(system, "pitch_accuracy", _get(pitch, "accuracy"))
    onsets = np.unique(clip.onset_frame[clip.starts_in_clip]) * seconds
    if len(onsets):
        scores.add(system, "onset_f1", _get(m.onset_f1(out.audio, onsets, sample_rate=sample_rate), "f1"))


def _get(result, key: str) -> float:
    if isinstance(result, dict):
        return result[key]
    if isinstance(result, tuple):
        return result[0]
    return getattr(result, key)


def clip_infos(batch: dict[str, torch.Tensor], refs, polyphonic: dict[str, bool]) -> list[ClipInfo]:
    infos = []
    for i, ref in enumerate(refs):
        mask = batch["note_mask"][i]
        on = batch["onset_frame"][i][mask].numpy()
        infos.append(ClipInfo(
            id=f"{ref.recording}@{ref.start}", polyphonic=bool(polyphonic[ref.recording]), frames=ref.frames,
            pitch=batch["pitch"][i][mask].numpy(), onset_frame=on, offset_frame=batch["offset_frame"][i][mask].numpy(),
            # a note cut by the clip start sits at frame 0 but did not start there (its onset is not heard)
            starts_in_clip=(on > 0) | (ref.start == 0)))
    return infos


def timing_table(errors: dict[str, dict[str, list[np.ndarray]]], frame_seconds: float) -> dict[str, dict[str, float]]:
    """Mean absolute onset/duration error in ms (and frames) of each timing system."""
    out = {}
    for system, parts in errors.items():
        onset = np.concatenate(parts["onset"]) if parts["onset"] else np.array([])
        duration = np.concatenate(parts["duration"]) if parts["duration"] else np.array([])
        out[system] = {
            "onset_error_ms": float(onset.mean() * frame_seconds * 1000) if len(onset) else float("nan"),
            "duration_error_ms": float(duration.mean() * frame_seconds * 1000) if len(duration) else float("nan"),
            "onset_error_frames": float(onset.mean()) if len(onset) else float("nan"),
            "median_onset_error_ms": float(np.median(onset) * frame_seconds * 1000) if len(onset) else float("nan"),
            "notes": int(len(onset)),
        }
    return out


def run_systems(systems: dict[str, Callable], batches, scores: Scores, heavy_clips: int,
                keep: Callable[[str, ClipInfo, ClipOutput], None] | None = None, progress=None) -> int:
    """Run every system on every batch of ``batches`` ((batch, infos) pairs) and score its clips."""
    seen = 0
    for batch, infos in batches:
        reference = batch["audio"].numpy()
        for name, system in systems.items():
            outputs = system(batch)
            for j, (out, clip) in enumerate(zip(outputs, infos)):
                ref_audio = reference[j, : clip.frames * 256]
                ref_mel = batch["mel"][j, :, : clip.frames].numpy()
                score_clip(scores, name, out, clip, ref_audio, ref_mel, heavy=seen + j < heavy_clips)
                if keep is not None:
                    keep(name, clip, out)
            if progress is not None:
                progress.update(1)
        seen += len(infos)
    return seen
