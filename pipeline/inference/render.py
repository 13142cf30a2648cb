"""Windowed rendering: score -> waveform through the three trained models (what `performer render` runs).

    score notes --AlignmentModel, 5 s windows of score time, stitched-->  performed frames
                --SynthesisModel, mel.clip_frames windows, cross-faded--> log-mel (n_mels, T)
                --vocoder, chunks with context-->                          waveform (T * hop,)

The models were trained on 5-second clips, so every step runs on windows of that size and
joins them:

* **Timing** (:func:`predict_timing`). Windows of ``window_seconds`` of score time (at the
  render tempo) advance by half a window. The model predicts onsets relative to each window's
  first note; what is kept from a window is the interval between consecutive chords (and the
  durations) in its central part, where it saw context on both sides. The global timeline is
  the running sum of the kept intervals, so it is monotone by construction, and is made a valid
  frame timeline by :func:`pipeline.models.alignment.to_timeline`.
* **Mel** (:func:`synthesize_mel`). Windows of ``mel.clip_frames`` frames (the training clips') overlapping by
  ``overlap`` frames are cut exactly as training clips are (``cut_clip`` + ``collate_clips``),
  predicted in batches, and cross-faded with raised-cosine weights over the overlaps.
* **Waveform** (:func:`vocode`). The fully convolutional vocoder runs on chunks with
  ``context`` frames of real mel on each side, discarded afterwards: the result equals a single
  pass (up to float rounding) at bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pipeline.datasets.clips import collate_clips, cut_clip
from pipeline.errors import PipelineError
from pipeline.inference.models import PerformerModels
from pipeline.models.alignment import AlignmentModel, alignment_inputs, to_timeline
from pipeline.models.synthesis import SynthesisModel, synthesis_inputs
from pipeline.models.vocoders import Vocoder
from pipeline.scores import NoteTable

# ------------------------------------------------------------------------------------------ timing


def _chord_windows(group_ticks: np.ndarray, span: float) -> list[tuple[int, int]]:
    """Windows ``[a, b)`` of chord indices covering all chords, each spanning < ``span`` ticks of
    score time (but at least two chords), the next starting half a span later and overlapping
    the previous by at least one chord."""
    n = len(group_ticks)
    windows: list[tuple[int, int]] = []
    a = 0
    while True:
        b = int(np.searchsorted(group_ticks, group_ticks[a] + span, side="left"))
        b = min(n, max(b, a + 2))
        windows.append((a, b))
        if b >= n:
            return windows
        nxt = int(np.searchsorted(group_ticks, group_ticks[a] + span / 2, side="left"))
        a = min(max(nxt, a + 1), b - 1)


@torch.inference_mode()
def predict_timing(
    model: AlignmentModel,
    notes: NoteTable,
    performer: int,
    tempo_qpm: float,
    window_seconds: float = 5.0,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Performed ``(onset_frame, offset_frame)`` of every note of ``notes`` (int arrays, notes'
    order), onsets monotone in score time and chords together, first onset at frame 0."""
    if len(notes) == 0:
        raise PipelineError("the score has no notes", notes.name or "score")
    device = next(model.parameters()).device
    ticks = notes.onset.astype(np.int64)
    group_ticks, group = np.unique(ticks, return_inverse=True)
    span = window_seconds * tempo_qpm / 60.0 * notes.resolution
    windows = _chord_windows(group_ticks, span)

    items, members = [], []
    for a, b in windows:
        idx = np.flatnonzero((group >= a) & (group < b))
        members.append(idx)
        items.append(_note_item(notes, idx, performer, tempo_qpm))
    preds: list[np.ndarray] = []
    for i in range(0, len(items), batch_size):
        batch = {k: v.to(device) for k, v in collate_clips(items[i : i + batch_size]).items()}
        pred = model(**alignment_inputs(model, batch)).float().cpu().numpy()
        preds.extend(pred[j, : len(members[i + j])] for j in range(len(pred)))

    # chord j's interval (from chord j - 1) and durations come from the window whose core holds j
    n_groups = len(group_ticks)
    interval = np.zeros(n_groups)
    duration = np.zeros(len(notes))
    cores = [0] + [max(a + 1, (a + windows[k - 1][1] + 1) // 2) for k, (a, _) in enumerate(windows) if k > 0]
    cores.append(n_groups)
    for k, ((a, b), idx, pred) in enumerate(zip(windows, members, preds)):
        local = group[idx] - a
        chord_onset = np.bincount(local, weights=pred[:, 0], minlength=b - a) / np.bincount(local, minlength=b - a)
        lo, hi = cores[k], cores[k + 1]
        for j in range(max(lo, a + 1), hi):
            interval[j] = chord_onset[j - a] - chord_onset[j - a - 1]
        own = (group[idx] >= lo) & (group[idx] < hi)
        duration[idx[own]] = pred[own, 1]
    chord_time = np.cumsum(np.maximum(interval, 0.0))
    pred = torch.from_numpy(np.stack([chord_time[group], duration], axis=-1)).float()[None]
    onset_frame, offset_frame = to_timeline(
        pred, torch.from_numpy(ticks)[None], torch.ones(1, len(notes), dtype=torch.bool)
    )
    return onset_frame[0].numpy(), offset_frame[0].numpy()


def _note_item(notes: NoteTable, idx: np.ndarray, performer: int, tempo_qpm: float) -> dict[str, np.ndarray]:
    """One window of notes in the form of a training clip (``cut_clip``'s keys; no mel)."""
    zeros = np.zeros(len(idx), dtype=np.int64)
    onset = notes.onset[idx].astype(np.int64)
    return {
        "mel": np.zeros((1, 1), np.float32),
        "pitch": notes.pitch[idx].astype(np.int64),
        "velocity": notes.velocity[idx].astype(np.int64),
        "score_onset": onset - onset.min(),
        "score_duration": notes.duration[idx].astype(np.int64),
        "onset_frame": zeros,
        "offset_frame": zeros + 1,
        "target_onset": zeros.astype(np.float32),
        "target_duration": zeros.astype(np.float32),
        "performer_id": np.int64(performer),
        "tempo_qpm": np.float32(tempo_qpm),
    }


# ------------------------------------------------------------------------------------------ mel


def _window_starts(n_frames: int, window: int, overlap: int) -> list[int]:
    hop = window - overlap
    starts = list(range(0, max(1, n_frames - overlap), hop))
    return starts or [0]


def crossfade_weights(length: int, fade_in: int, fade_out: int) -> np.ndarray:
    """(length,) weights: raised-cosine ramps of ``fade_in``/``fade_out`` frames at the ends, 1
    between. A fade-out and the next window's fade-in over the same frames sum to exactly 1."""

    def ramp(n: int) -> np.ndarray:
        return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)

    w = np.ones(length)
    if fade_in:
        w[:fade_in] *= ramp(fade_in)
    if fade_out:
        w[length - fade_out :] *= ramp(fade_out)[::-1]
    return w


@torch.inference_mode()
def synthesize_mel(
    model: SynthesisModel,
    notes: NoteTable,
    onset_frame: np.ndarray,
    offset_frame: np.ndarray,
    performer: int,
    n_frames: int,
    window: int,
    overlap: int = 64,
    batch_size: int = 16,
) -> np.ndarray:
    """Log-mel ``(n_mels, n_frames)`` of the notes played at the given frames, predicted in ``window``
    frames at a time (the training clips' length, ``mel.clip_frames``)."""
    if not 0 <= 2 * overlap < window:
        raise ValueError("need 0 <= overlap < window / 2")
    device = next(model.parameters()).device
    n_mels = model.hparams["n_mels"]
    data: dict[str, Any] = {
        "mel": np.zeros((n_mels, n_frames), np.float32),  # untouched pages: costs no memory
        "pitch": notes.pitch,
        "velocity": notes.velocity,
        "score_onset": notes.onset,
        "score_duration": notes.duration,
        "onset_frame": onset_frame,
        "offset_frame": offset_frame,
        "performer_id": np.int64(performer),
    }
    starts = _window_starts(n_frames, window, overlap)
    total = np.zeros((n_mels, n_frames))
    weight = np.zeros(n_frames)
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        clips = [cut_clip(data, s, min(window, n_frames - s)) for s in chunk]
        batch = {k: v.to(device) for k, v in collate_clips(clips).items()}
        mel = model(**synthesis_inputs(model, batch)).float().cpu().numpy()
        for j, s in enumerate(chunk):
            length = clips[j]["mel"].shape[1]
            first, last = s == 0, s + length >= n_frames
            w = crossfade_weights(length, 0 if first else overlap, 0 if last else overlap)
            total[:, s : s + length] += mel[j, :, :length] * w
            weight[s : s + length] += w
    return (total / np.maximum(weight, 1e-8)).astype(np.float32)


# ------------------------------------------------------------------------------------------ waveform


@torch.inference_mode()
def vocode(
    vocoder: Vocoder, mel: np.ndarray, chunk_frames: int = 1024, context: int = 32, source: np.ndarray | None = None
) -> np.ndarray:
    """Waveform ``(frames * hop,)`` of a log-mel ``(n_mels, frames)``, in chunks with context (the
    chunks' joins are exact: ``context`` frames exceed every vocoder's receptive field).

    ``source``: the excitation ``([channels,] frames * hop)`` of a source-filter vocoder
    (``vocoder.make_source``); required by such a vocoder, ignored by the plain one."""
    device = next(vocoder.parameters()).device
    hop = vocoder.hop_length
    bins = vocoder.config()["in_channels"]
    if mel.ndim != 2 or mel.shape[0] != bins:
        raise PipelineError(f"the vocoder takes a mel of shape ({bins}, frames), got {tuple(mel.shape)}")
    if not np.isfinite(mel).all():
        raise PipelineError("the mel holds NaN or infinite values: nothing to vocode")
    n_frames = mel.shape[1]
    if getattr(vocoder, "excitation", False) and source is None:
        raise PipelineError("this vocoder needs the notes' excitation (vocoder.make_source)")
    mel_t = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32)).to(device)
    source_t = None
    if getattr(vocoder, "excitation", False):
        source_t = torch.from_numpy(np.ascontiguousarray(source, dtype=np.float32)).to(device)
        if source_t.shape[-1] != n_frames * hop:
            raise PipelineError(f"excitation has {source_t.shape[-1]} samples, expected {n_frames * hop}")
    out = np.zeros(n_frames * hop, np.float32)
    for start in range(0, n_frames, chunk_frames):
        stop = min(n_frames, start + chunk_frames)
        lo, hi = max(0, start - context), min(n_frames, stop + context)
        chunk_source = None if source_t is None else source_t[..., lo * hop : hi * hop][None]
        audio = vocoder(mel_t[None, :, lo:hi], chunk_source)[0, 0].float().cpu().numpy()
        out[start * hop : stop * hop] = audio[(start - lo) * hop : (stop - lo) * hop]
    return out


# ------------------------------------------------------------------------------------------ all three


@dataclass
class Rendering:
    audio: np.ndarray  # (samples,) float32 at sample_rate
    mel: np.ndarray  # (n_mels, frames)
    onset_frame: np.ndarray  # (notes,) performed onset frame of every note, in the score's note order
    offset_frame: np.ndarray  # (notes,) exclusive
    sample_rate: int
    hop_length: int

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


def render_score(
    models: PerformerModels, notes: NoteTable, performer: str, tempo_qpm: float | None = None, tail_seconds: float = 0.5
) -> Rendering:
    """Perform ``notes`` as ``performer`` at ``tempo_qpm`` (the score's own by default)."""
    mel = models.mel
    if len(notes) == 0:
        raise PipelineError("the score has no notes", notes.name or "score")
    frame_rate = mel.sample_rate / mel.hop_length
    qpm = float(tempo_qpm or notes.tempo_qpm)
    if not 0 < qpm < 1000:
        raise PipelineError(f"tempo must be between 0 and 1000 quarter notes per minute, not {qpm:g}", notes.name)
    performer_id = models.performer_id(performer)
    order = np.lexsort((notes.pitch, notes.onset))  # score order, chords by pitch
    played = notes.subset(order)
    onset_sorted, offset_sorted = predict_timing(models.alignment, played, performer_id, qpm)
    n_frames = int(offset_sorted.max()) + int(round(tail_seconds * frame_rate))
    spec = synthesize_mel(
        models.synthesis, played, onset_sorted, offset_sorted, performer_id, n_frames, window=mel.clip_frames
    )
    onset_frame, offset_frame = np.empty_like(onset_sorted), np.empty_like(offset_sorted)
    onset_frame[order], offset_frame[order] = onset_sorted, offset_sorted
    source = models.vocoder.make_source(played.pitch, onset_sorted, offset_sorted, n_frames, mel.sample_rate)
    audio = vocode(models.vocoder, spec, source=source)
    peak = float(np.abs(audio).max())
    if peak > 0.99:  # keep the dynamics; only avoid clipping
        audio *= 0.99 / peak
    return Rendering(audio, spec, onset_frame, offset_frame, mel.sample_rate, mel.hop_length)
