"""Waveform segments for the vocoder: fixed-length windows of the 16 kHz recordings.

The vocoder needs no alignment; it learns mel -> waveform on ``segment_samples``-long windows
(8192 = 32 mel frames). The mel is computed from the segment itself on the training device,
through the one recipe in :mod:`pipeline.mel`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.audio import load_audio
from pipeline.datasets.layout import read_manifest

SEGMENT_SAMPLES = 8192


class AudioSegments(Dataset):
    """Windows of ``segment_samples`` on a grid over each recording in ``recordings``.

    ``hop`` < segment gives overlapping windows (more, correlated examples from a small corpus).
    """

    def __init__(
        self,
        audio_dir: str | Path,
        recordings: list[str],
        segment_samples: int = SEGMENT_SAMPLES,
        hop: int | None = None,
        excitation: Callable[[str, int], np.ndarray] | None = None,
    ) -> None:
        """``excitation(recording, samples)``: the source-filter vocoder's excitation of a whole
        recording (``samples`` long); segments then also carry the matching ``source``."""
        root = Path(audio_dir)
        manifest = {r.id: r for r in read_manifest(root)}
        self.segment = segment_samples
        self.audio = [load_audio(root / manifest[rec].audio)[0] for rec in recordings]
        self.sources = (
            None if excitation is None else [excitation(rec, len(a)) for rec, a in zip(recordings, self.audio)]
        )
        hop = hop or segment_samples
        self.refs = [
            (i, start)
            for i, a in enumerate(self.audio)
            for start in range(0, max(1, len(a) - segment_samples + 1), hop)
        ]

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        which, start = self.refs[index]
        item = {"audio": self._cut(self.audio[which], start)}
        if self.sources is not None:
            item["source"] = self._cut(self.sources[which], start)
        return item

    def _cut(self, signal: np.ndarray, start: int) -> np.ndarray:
        """``signal[..., start:start + segment]``, zero-padded at the end (a source may have channels)."""
        piece = signal[..., start : start + self.segment]
        short = self.segment - piece.shape[-1]
        return np.pad(piece, [(0, 0)] * (piece.ndim - 1) + [(0, short)]) if short > 0 else piece


def collate_segments(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """``audio`` (B, segment_samples) and, where the segments carry one, ``source`` (B, [channels,]
    segment_samples), float32."""
    return {key: torch.from_numpy(np.stack([it[key] for it in items]).astype(np.float32)) for key in items[0]}
