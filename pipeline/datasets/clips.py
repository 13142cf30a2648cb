"""Training clips: fixed-length windows of the ``mel`` stage's features, with their notes.

A recording of ``frames`` mel frames is cut into windows of ``clip_frames`` (params.yaml
``mel.clip_frames``: the paper's 5 s). Each clip carries the notes sounding in it, with frames relative to the clip start
(clipped to the window) and score times relative to the first note of the clip. Which recordings
a dataset holds is the split's business (pipeline.datasets.split), not this module's. A dataset
``mel=False`` reads no mel (the alignment model's clips: notes and their performed frames only), so it
may hold annotation-only recordings (index.csv ``has_audio`` false), which have none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from pipeline.datasets.batching import NOTE_KEYS, collate_arrays, cut_clip  # noqa: F401  (re-exported)
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


def audio_flags(index: pd.DataFrame) -> dict[str, bool]:
    """Recording id -> whether it has audio (index.csv ``has_audio``; an index without the column is
    one written before annotation-only recordings existed: every recording has audio)."""
    if "has_audio" not in index:
        return dict.fromkeys(index["id"], True)
    return {i: str(v).strip().lower() in ("true", "1") for i, v in zip(index["id"], index["has_audio"])}


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
        mel: bool = True,
    ) -> None:
        """``clip_frames`` and ``hop_length``: the ``mel`` params group's. ``audio_dir`` (the resample
        stage's folder, e.g. data/audio16k): clips also carry the waveform under ``audio``:
        ``frames * hop_length`` samples starting at ``start * hop_length`` (zero-padded at the end of a
        recording), what the waveform baselines train on. ``mel``: clips carry the log-mel (every
        recording must then have audio); False: no mel is read, annotation-only recordings are welcome."""
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
        has_audio = audio_flags(self.index)
        silent = [r for r in self.recordings if not has_audio[r]]
        if silent and (mel or audio_dir is not None):
            raise PipelineError(
                f"annotation-only recording(s) {', '.join(silent[:3])} have no audio: not for clips with a mel "
                "or a waveform",
                index_path,
            )
        self.with_mel = mel
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
        data = load_features(self.root / f"{recording}.npz", mel=self.with_mel)
        if self.with_mel and "mel" not in data:
            raise PipelineError(
                "feature file has no mel (an annotation-only recording)", self.root / f"{recording}.npz"
            )
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


def collate_clips(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """:func:`pipeline.datasets.batching.collate_arrays` as torch tensors (shapes and dtypes there)."""
    return {key: torch.from_numpy(value) for key, value in collate_arrays(items).items()}
