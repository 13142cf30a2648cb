"""Training clips: fixed-length windows of the ``mel`` stage's features, with their notes.

A recording of ``frames`` mel frames is cut into windows of ``clip_frames`` (params.yaml
``mel.clip_frames``: the paper's 5 s). Each clip carries the notes sounding in it, with frames relative to the clip start
(clipped to the window) and score times relative to the first note of the clip. Which recordings
a dataset holds is the split's business (pipeline.datasets.split), not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from pipeline.errors import PipelineError
from pipeline.features import load_features
from pipeline.loudness import level_db, mel_power


@dataclass(frozen=True)
class ClipRef:
    recording: str
    start: int  # first frame of the clip in the recording
    frames: int


def clip_refs(index: pd.DataFrame, recordings: list[str], clip_frames: int, min_frames: int = 32) -> list[ClipRef]:
    """Consecutive windows of every recording; a short last window is kept if >= ``min_frames``."""
    frames_of = dict(zip(index["id"], index["frames"]))
    refs = []
    for rec in recordings:
        total = int(frames_of[rec])
        for start in range(0, total, clip_frames):
            length = min(clip_frames, total - start)
            if length >= min_frames:
                refs.append(ClipRef(rec, start, length))
    return refs


def cut_clip(data: dict[str, np.ndarray], start: int, frames: int, notes: str = "sounding") -> dict[str, Any]:
    """The notes and mel frames of one window; note frames relative to ``start``, clipped to it.

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
    return {
        "mel": data["mel"][:, start:stop],
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


class ClipDataset(Dataset):
    """Clips of the recordings in ``recordings``, read lazily from ``features_dir``/<id>.npz."""

    def __init__(
        self,
        features_dir: str | Path,
        recordings: list[str] | None = None,
        *,
        clip_frames: int,
        hop_length: int,
        notes: str = "sounding",
        cache: bool = True,
        audio_dir: str | Path | None = None,
    ) -> None:
        """``clip_frames`` and ``hop_length``: the ``mel`` params group's. ``audio_dir`` (the resample stage's folder, e.g. data/audio16k): clips also carry the
        waveform under ``audio``: ``frames * hop_length`` samples starting at ``start * hop_length``
        (zero-padded at the end of a recording), what the waveform baselines train on."""
        if notes not in ("sounding", "starting"):
            raise ValueError(f"notes must be 'sounding' or 'starting', not {notes!r}")
        self.notes = notes
        self.root = Path(features_dir)
        index_path = self.root / "index.csv"
        if not index_path.is_file():
            raise PipelineError("feature index not found (run the mel stage)", index_path)
        self.index = pd.read_csv(index_path, dtype={"id": str})
        self.recordings = sorted(self.index["id"]) if recordings is None else list(recordings)
        unknown = set(self.recordings) - set(self.index["id"])
        if unknown:
            raise PipelineError(f"unknown recordings {sorted(unknown)[:3]}", index_path)
        self.refs = clip_refs(self.index, self.recordings, clip_frames)
        tempo = self.index["tempo_qpm"] if "tempo_qpm" in self.index else pd.Series(100.0, index=self.index.index)
        self._tempo = dict(zip(self.index["id"], tempo.astype(float)))
        self._cache: dict[str, dict[str, np.ndarray]] = {}
        self.cache = cache
        self.hop_length = hop_length
        self._audio_paths: dict[str, Path] = {}
        self._tuning: dict[str, float] = {}
        if audio_dir is not None:
            from pipeline.datasets.layout import read_manifest

            manifest = {r.id: Path(audio_dir) / r.audio for r in read_manifest(audio_dir)}
            missing = [r for r in self.recordings if r not in manifest]
            if missing:
                raise PipelineError(f"no audio for recordings {missing[:3]}", Path(audio_dir) / "manifest.csv")
            self._audio_paths = {r: manifest[r] for r in self.recordings}
            self._tuning = {r.id: float(r.tuning_cents) for r in read_manifest(audio_dir)}
        self._audio: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.refs)

    def features(self, recording: str) -> dict[str, np.ndarray]:
        if recording in self._cache:
            return self._cache[recording]
        data = load_features(self.root / f"{recording}.npz")
        if self.cache:
            self._cache[recording] = data
        return data

    def __getitem__(self, i: int) -> dict[str, Any]:
        ref = self.refs[i]
        clip = cut_clip(self.features(ref.recording), ref.start, ref.frames, self.notes)
        clip["tempo_qpm"] = np.float32(self._tempo[ref.recording])
        if self._audio_paths:
            audio = self.audio(ref.recording)
            first, n = ref.start * self.hop_length, ref.frames * self.hop_length
            segment = np.zeros(n, np.float32)
            piece = audio[first : first + n]
            segment[: len(piece)] = piece
            clip["audio"] = segment
            clip["tuning_cents"] = np.float32(self._tuning.get(ref.recording, 0.0))
        return clip

    def performer_levels_db(self, n_performers: int) -> tuple[float, ...]:
        """Each performer's level (:func:`pipeline.loudness.level_db`, mean frame power of the log-mel)
        over every frame of their recordings in this set; a performer with none gets the level of all
        of them. What `performer render` sets its output to (:mod:`pipeline.loudness`)."""
        power, frames = np.zeros(n_performers), np.zeros(n_performers, dtype=np.int64)
        for recording in self.recordings:
            data = self.features(recording)
            performer = int(data["performer_id"])
            if not 0 <= performer < n_performers:
                raise PipelineError(f"performer id {performer} outside 0 .. {n_performers - 1}", recording)
            p, n = mel_power(data["mel"])
            power[performer] += p
            frames[performer] += n
        if not frames.sum():
            raise PipelineError("no frames to measure the performers' level on", self.root)
        pooled = level_db(float(power.sum()), int(frames.sum()))
        return tuple(round(level_db(float(p), int(n)), 4) if n else round(pooled, 4) for p, n in zip(power, frames))

    def audio(self, recording: str) -> np.ndarray:
        """The whole 16 kHz waveform of a recording (cached like the features)."""
        if recording in self._audio:
            return self._audio[recording]
        from pipeline.audio import load_audio

        signal = load_audio(self._audio_paths[recording])[0].astype(np.float32)
        if self.cache:
            self._audio[recording] = signal
        return signal


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


def collate_clips(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Pad notes and frames to the longest in the batch; masks are True where data is real.

    Shapes: note arrays (B, N), ``note_mask`` (B, N), ``mel`` (B, n_mels, T), ``frame_mask`` (B, T),
    ``performer`` (B,), ``tempo_qpm`` (B,); ``audio`` (B, T * hop) and ``tuning_cents`` (B,) when the
    clips carry audio.
    """
    batch = len(items)
    n_notes = max(1, max(len(it["pitch"]) for it in items))
    n_frames = max(it["mel"].shape[1] for it in items)
    n_mels = items[0]["mel"].shape[0]
    out: dict[str, torch.Tensor] = {}
    for key in NOTE_KEYS:
        dtype = torch.float32 if key.startswith("target") else torch.long
        tensor = torch.zeros(batch, n_notes, dtype=dtype)
        for b, it in enumerate(items):
            tensor[b, : len(it[key])] = torch.as_tensor(it[key], dtype=dtype)
        out[key] = tensor
    out["offset_frame"] = torch.maximum(out["offset_frame"], out["onset_frame"] + 1)  # keep padding well-formed
    out["note_mask"] = torch.zeros(batch, n_notes, dtype=torch.bool)
    out["mel"] = torch.full((batch, n_mels, n_frames), float(np.log(1e-5)))
    out["frame_mask"] = torch.zeros(batch, n_frames, dtype=torch.bool)
    for b, it in enumerate(items):
        out["note_mask"][b, : len(it["pitch"])] = True
        out["mel"][b, :, : it["mel"].shape[1]] = torch.as_tensor(it["mel"])
        out["frame_mask"][b, : it["mel"].shape[1]] = True
    out["performer"] = torch.as_tensor([int(it["performer_id"]) for it in items], dtype=torch.long)
    out["tempo_qpm"] = torch.as_tensor([float(it.get("tempo_qpm", 100.0)) for it in items], dtype=torch.float32)
    if "tuning_cents" in items[0]:
        out["tuning_cents"] = torch.as_tensor([float(it["tuning_cents"]) for it in items], dtype=torch.float32)
    if "audio" in items[0]:
        samples = max(len(it["audio"]) for it in items)
        out["audio"] = torch.zeros(batch, samples)
        for b, it in enumerate(items):
            out["audio"][b, : len(it["audio"])] = torch.as_tensor(it["audio"])
    return out
