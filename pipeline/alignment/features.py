"""DTW features: CQT chroma plus decaying locally-adaptive normalised chroma onsets (DLNCO).

Chroma says which pitch classes sound; the onset features say when a pitch class starts,
which pins note boundaries that chroma alone smears (repeated notes, legato).
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

CQT_FMIN_MIDI = 36  # C2
CQT_OCTAVES = 6  # C2..B7: covers violin, voices and most piano energy below 8 kHz


@dataclass
class SyncFeatures:
    """Frame-wise features at ``rate`` frames per second: ``chroma`` and ``onset`` are (frames, 12)."""

    chroma: np.ndarray
    onset: np.ndarray
    pitch_energy: np.ndarray  # (frames, 12 * CQT_OCTAVES) log-compressed CQT, for onset refinement
    rate: float

    def __len__(self) -> int:
        return len(self.chroma)

    def pooled(self, factor: int) -> "SyncFeatures":
        """Average ``factor`` frames into one (a coarser DTW level), renormalised."""
        if factor == 1:
            return self
        n = len(self) // factor * factor
        chroma = self.chroma[:n].reshape(-1, factor, 12).mean(axis=1) if n else self.chroma[:1]
        onset = self.onset[:n].reshape(-1, factor, 12).max(axis=1) if n else self.onset[:1]
        return SyncFeatures(_unit_rows(chroma), _unit_rows(onset), self.pitch_energy[:: factor], self.rate / factor)


def _unit_rows(x: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """L2-normalise rows; near-silent rows become the flat vector (equidistant from everything)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    flat = np.full_like(x, 1.0 / np.sqrt(x.shape[1]))
    return np.where(norm > floor, x / np.maximum(norm, floor), flat).astype(np.float32)


def sync_features(audio: np.ndarray, sample_rate: int, rate: int = 100) -> SyncFeatures:
    """Features of mono ``audio`` at ``rate`` frames per second (``sample_rate / rate`` must be whole)."""
    hop = sample_rate // rate
    if hop * rate != sample_rate or hop % 2 ** (CQT_OCTAVES - 1):
        raise ValueError(f"feature rate {rate} needs a hop dividing {sample_rate} and divisible by {2 ** (CQT_OCTAVES - 1)}")
    cqt = np.abs(
        librosa.cqt(
            audio.astype(np.float32), sr=sample_rate, hop_length=hop, fmin=librosa.midi_to_hz(CQT_FMIN_MIDI),
            n_bins=12 * CQT_OCTAVES, bins_per_octave=12, res_type="soxr_hq", dtype=np.complex64,
        )
    ).T  # (frames, bins)
    energy = np.log1p(100.0 * cqt).astype(np.float32)
    chroma = _unit_rows(energy.reshape(len(energy), CQT_OCTAVES, 12).sum(axis=1))

    # onsets: half-wave rectified log-energy increase per pitch, folded to chroma,
    # normalised by a local (1 s) maximum, then smeared forward with a decaying kernel
    rise = np.maximum(np.diff(energy, axis=0, prepend=energy[:1]), 0.0)
    lnco = rise.reshape(len(rise), CQT_OCTAVES, 12).sum(axis=1)
    strength = np.linalg.norm(lnco, axis=1)
    local_max = _running_max(strength, rate)
    lnco = lnco / np.maximum(local_max, 1e-3)[:, None]
    decay = np.sqrt(np.linspace(1.0, 0.0, max(2, rate // 10), endpoint=False))
    dlnco = np.zeros_like(lnco)
    for k, weight in enumerate(decay):
        dlnco[k:] = np.maximum(dlnco[k:], weight * lnco[: len(lnco) - k])
    return SyncFeatures(chroma, dlnco.astype(np.float32), energy, float(rate))


def _running_max(x: np.ndarray, width: int) -> np.ndarray:
    from scipy.ndimage import maximum_filter1d

    return maximum_filter1d(x, size=max(1, width), mode="nearest")
