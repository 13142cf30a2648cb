"""Clips as arrays, without torch: cutting a window of a recording's notes and mel, and padding a list of
clips into one batch. Training, evaluation and rendering share these (the rendering path on onnxruntime
imports no torch: :mod:`pipeline.inference.runtime.onnx_models`); :func:`pipeline.datasets.clips.collate_clips`
is :func:`collate_arrays` as torch tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def cut_clip(data: dict[str, np.ndarray], start: int, frames: int, notes: str = "sounding") -> dict[str, Any]:
    """The notes and mel frames of one window; note frames relative to ``start``, clipped to it.
    ``data`` without ``mel`` (an annotation-only recording, or read without it) gives a clip without.

    ``notes="sounding"`` keeps every note heard in the window (synthesis); ``"starting"`` only the
    notes whose onset lies in it (alignment: every target onset is then inside the clip).
    """
    stop = start + frames
    on, off = data["onset_frame"].astype(np.int64), data["offset_frame"].astype(np.int64)
    keep = (on < stop) & (off > start) if notes == "sounding" else (on >= start) & (on < stop)
    score_onset = data["score_onset"][keep].astype(np.int64)
    origin = int(score_onset.min()) if keep.any() else 0
    # alignment clips count performed time from their first note (where a grid cut falls is arbitrary)
    time_origin = int(on[keep].min()) if notes == "starting" and keep.any() else start
    clip = {
        "pitch": data["pitch"][keep].astype(np.int64),
        "velocity": data["velocity"][keep].astype(np.int64),
        "score_onset": score_onset - origin,
        "score_duration": data["score_duration"][keep].astype(np.int64),
        "onset_frame": np.clip(on[keep] - start, 0, frames - 1),
        "offset_frame": np.clip(off[keep] - start, 1, frames),
        # unclipped performed timing, the alignment model's target (frames from the time origin)
        "target_onset": (on[keep] - time_origin).astype(np.float32),
        "target_duration": (off[keep] - on[keep]).astype(np.float32),
        "performer_id": np.int64(data["performer_id"]),
    }
    if "mel" in data:
        clip["mel"] = data["mel"][:, start:stop]
    return clip


NOTE_KEYS = (
    "pitch",
    "velocity",
    "score_onset",
    "score_duration",
    "onset_frame",
    "offset_frame",
    "target_onset",
    "target_duration",
)


def collate_arrays(items: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Pad notes and frames to the longest in the batch; masks are True where data is real.

    Shapes: note arrays (B, N) int64 (``target_*`` float32), ``note_mask`` (B, N) bool, ``mel``
    (B, n_mels, T) float32 and ``frame_mask`` (B, T) bool when the clips carry a mel (the alignment
    model's clips do not: it reads only notes), ``performer`` (B,) int64, ``tempo_qpm`` (B,) float32;
    ``audio`` (B, T * hop) float32 and ``tuning_cents`` (B,) float32 when the clips carry audio.
    """
    batch = len(items)
    n_notes = max(1, max(len(it["pitch"]) for it in items))
    with_mel = sum("mel" in it for it in items)
    if with_mel not in (0, batch):
        raise ValueError(f"{with_mel} of {batch} clips carry a mel: a batch is all with or all without")
    out: dict[str, np.ndarray] = {}
    for key in NOTE_KEYS:
        array = np.zeros((batch, n_notes), np.float32 if key.startswith("target") else np.int64)
        for b, it in enumerate(items):
            array[b, : len(it[key])] = it[key]
        out[key] = array
    out["offset_frame"] = np.maximum(out["offset_frame"], out["onset_frame"] + 1)  # keep padding well-formed
    out["note_mask"] = np.zeros((batch, n_notes), bool)
    for b, it in enumerate(items):
        out["note_mask"][b, : len(it["pitch"])] = True
    if with_mel:
        n_frames = max(it["mel"].shape[1] for it in items)
        out["mel"] = np.full((batch, items[0]["mel"].shape[0], n_frames), np.log(1e-5), np.float32)
        out["frame_mask"] = np.zeros((batch, n_frames), bool)
        for b, it in enumerate(items):
            out["mel"][b, :, : it["mel"].shape[1]] = it["mel"]
            out["frame_mask"][b, : it["mel"].shape[1]] = True
    out["performer"] = np.array([int(it["performer_id"]) for it in items], np.int64)
    out["tempo_qpm"] = np.array([float(it.get("tempo_qpm", 100.0)) for it in items], np.float32)
    if "tuning_cents" in items[0]:
        out["tuning_cents"] = np.array([float(it["tuning_cents"]) for it in items], np.float32)
    if "audio" in items[0]:
        samples = max(len(it["audio"]) for it in items)
        out["audio"] = np.zeros((batch, samples), np.float32)
        for b, it in enumerate(items):
            out["audio"][b, : len(it["audio"])] = it["audio"]
    return out
