"""Align a score to a recording: render the score, DTW the features, map every note.

This is what the Bach Violin Dataset's authors did (FluidSynth + MuseScore General, DTW on a
constant-Q spectrogram), with chroma + onset features, multi-resolution DTW in bounded memory
and a per-note onset refinement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.alignment.dtw import multiresolution_dtw
from pipeline.alignment.features import CQT_FMIN_MIDI, CQT_OCTAVES, SyncFeatures, sync_features
from pipeline.config import AlignConfig
from pipeline.errors import PipelineError
from pipeline.rendering import Instrument, render_notes_constant_tempo
from pipeline.scores import NoteTable


@dataclass
class NoteAlignment:
    """Per note (score order): performed onset and offset in seconds."""

    onset: np.ndarray
    offset: np.ndarray


def warp_function(path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Monotone map from reference frames to performance frames: mean column per path row."""
    rows, inverse = np.unique(path[:, 0], return_inverse=True)
    cols = np.bincount(inverse, weights=path[:, 1]) / np.bincount(inverse)
    return rows.astype(float), np.maximum.accumulate(cols)


def refine_onsets(onset: np.ndarray, pitch: np.ndarray, features: SyncFeatures, radius: float) -> np.ndarray:
    """Move each onset to the strongest energy rise of its pitch (and octave) within ``radius`` seconds."""
    if radius <= 0:
        return onset
    energy = features.pitch_energy
    rise = np.maximum(np.diff(energy, axis=0, prepend=energy[:1]), 0.0)
    width = int(round(radius * features.rate))
    out = onset.copy()
    for n, (t, p) in enumerate(zip(onset, pitch)):
        b = int(p) - CQT_FMIN_MIDI
        if not 0 <= b < 12 * CQT_OCTAVES:
            continue
        center = int(round(t * features.rate))
        lo, hi = max(0, center - width), min(len(rise), center + width + 1)
        if hi - lo < 3:
            continue
        curve = rise[lo:hi, b] + (0.5 * rise[lo:hi, b + 12] if b + 12 < rise.shape[1] else 0.0)
        peak = int(np.argmax(curve))
        if curve[peak] > 2.0 * np.median(curve) + 1e-3:
            out[n] = (lo + peak) / features.rate
    return out


def align_score_to_audio(
    notes: NoteTable,
    audio: np.ndarray,
    sample_rate: int,
    config: AlignConfig | None = None,
    program: int = 40,
    tuning_cents: float = 0.0,
) -> NoteAlignment:
    """Performed onset/offset of every note of ``notes`` in the mono recording ``audio``."""
    config = config or AlignConfig()
    if len(notes) == 0:
        raise PipelineError(f"score {notes.name!r} holds no notes")
    if config.feature_rate % config.coarse_rate:
        raise PipelineError("align.feature_rate must be a multiple of align.coarse_rate")
    shifted = notes.subset(np.arange(len(notes)))
    shifted.pitch = np.clip(notes.pitch + int(round(tuning_cents / 100.0)), 0, 127)
    reference = render_notes_constant_tempo(shifted, Instrument(config.soundfont, program=program, reverb_send=0), sample_rate)
    ref_features = sync_features(reference, sample_rate, config.feature_rate)
    perf_features = sync_features(audio, sample_rate, config.feature_rate)
    path = multiresolution_dtw(
        ref_features,
        perf_features,
        factors=(config.feature_rate // config.coarse_rate,),
        radius=int(round(config.band_seconds * config.feature_rate)),
        onset_weight=config.onset_weight,
        diagonal_weight=config.diagonal_weight,
    )
    rows, cols = warp_function(path)
    score_on, score_off = notes.seconds()
    rate = config.feature_rate
    onset = np.interp(score_on * rate, rows, cols) / rate
    offset = np.interp(score_off * rate, rows, cols) / rate
    onset = refine_onsets(onset, shifted.pitch, perf_features, config.refine_seconds)
    offset = np.maximum(offset, onset + 1.0 / rate)
    return NoteAlignment(onset, offset)
