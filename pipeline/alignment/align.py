"""Align a score to a recording: render the score, DTW the features, map every note.

This follows what the Bach Violin Dataset's authors did (a FluidSynth + MuseScore General
reference rendering, DTW between the reference and the recording), with

* a reference that re-articulates repeated notes and has a little room reverb
  (pipeline/alignment/reference.py),
* chroma + per-band onset features from one STFT (pipeline/alignment/features.py),
* leading and trailing silence of both signals left out of the DTW (:func:`active_range`),
* multi-resolution DTW in bounded memory (pipeline/alignment/dtw.py),
* note times read off the path (mean performance frame per reference frame, interpolated),
* a confidence per recording and per note (pipeline/alignment/confidence.py): how much better the
  path explains the recording's pitch content than chance.

docs/benchmarks.md has the measurements behind each choice and against the authors' method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.alignment.confidence import alignment_confidence
from pipeline.alignment.dtw import multiresolution_dtw
from pipeline.alignment.features import sync_features
from pipeline.alignment.reference import render_reference
from pipeline.config import AlignConfig
from pipeline.errors import PipelineError
from pipeline.scores import NoteTable


@dataclass
class NoteAlignment:
    """Per note (score order): performed onset and offset in seconds, and the alignment's confidence
    in [0, 1] (1 = confident): ``note_confidence`` per note, ``confidence`` for the whole recording."""

    onset: np.ndarray
    offset: np.ndarray
    confidence: float
    note_confidence: np.ndarray


def warp_function(path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Monotone map from reference frames to performance frames: mean column per path row."""
    rows, inverse = np.unique(path[:, 0], return_inverse=True)
    cols = np.bincount(inverse, weights=path[:, 1]) / np.bincount(inverse)
    return rows.astype(float), np.maximum.accumulate(cols)


def map_frames(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Reference frame positions ``x`` to performance frames; outside the path at slope 1."""
    y = np.interp(x, rows, cols)
    y = np.where(x < rows[0], cols[0] + (x - rows[0]), y)
    return np.where(x > rows[-1], cols[-1] + (x - rows[-1]), y)


def active_range(level: np.ndarray, below_peak_db: float) -> tuple[int, int]:
    """First and one-past-last frame louder than ``below_peak_db`` under the loud (95th percentile) level.

    Leading and trailing silence (or a noise floor under that threshold) is cut; a recording that
    never drops under it is kept whole.
    """
    if below_peak_db <= 0 or len(level) == 0:
        return 0, len(level)
    loud = np.flatnonzero(level > np.percentile(level, 95) - below_peak_db)
    if len(loud) == 0:
        return 0, len(level)
    return int(loud[0]), int(loud[-1]) + 1


MAX_SPEEDUP = 4.0  # a recording this much shorter than its score at the written tempo is not a performance of it


def align_score_to_audio(
    notes: NoteTable,
    audio: np.ndarray,
    sample_rate: int,
    config: AlignConfig,
    tuning_cents: float = 0.0,
    program: int = -1,
) -> NoteAlignment:
    """Performed onset/offset of every note of ``notes`` in the mono recording ``audio``; the reference
    is rendered on General MIDI ``program`` (-1: ``config.program``), the recording's instrument."""
    if len(notes) == 0:
        raise PipelineError(f"score {notes.name!r} holds no notes")
    if config.feature_rate % config.coarse_rate:
        raise PipelineError("align.feature_rate must be a multiple of align.coarse_rate")
    rate = config.feature_rate
    score_on, score_off = notes.seconds()
    recording_seconds, score_seconds = len(audio) / sample_rate, float(score_off.max() - score_on.min())
    if recording_seconds * MAX_SPEEDUP < score_seconds:
        raise PipelineError(
            f"the recording lasts {recording_seconds:.1f} s, its score {score_seconds:.1f} s at the written tempo: "
            f"more than {MAX_SPEEDUP:g}x faster than written (the wrong score?)"
        )
    pitch = np.clip(notes.pitch + int(round(tuning_cents / 100.0)), 0, 127)
    reference = render_reference(
        score_on,
        score_off,
        pitch,
        notes.velocity,
        config.soundfont,
        config.program if program < 0 else program,
        sample_rate,
        repeat_gap=config.repeat_gap,
        reverb_send=config.reference_reverb,
    )
    options = dict(
        window_seconds=config.window_seconds,
        chroma_gamma=config.chroma_gamma,
        onset_gamma=config.onset_gamma,
        onset_decay=config.onset_decay,
    )
    ref = sync_features(reference, sample_rate, rate, **options)
    del reference
    perf = sync_features(audio, sample_rate, rate, **options)
    r0, r1 = active_range(ref.level, config.trim_db)
    p0, p1 = active_range(perf.level, config.trim_db)
    x, y = ref.cut(r0, r1), perf.cut(p0, p1)
    path = multiresolution_dtw(
        x,
        y,
        factor=rate // config.coarse_rate,
        radius=int(round(config.band_seconds * rate)),
        onset_weight=config.onset_weight,
        diagonal_weight=config.diagonal_weight,
    )
    rows, cols = warp_function(path + np.array([r0, p0]))
    onset = map_frames(score_on * rate, rows, cols) / rate
    offset = map_frames(score_off * rate, rows, cols) / rate
    onset = np.clip(onset, 0.0, len(audio) / sample_rate)
    offset = np.maximum(offset, onset + 1.0 / rate)
    trust = alignment_confidence(
        x,
        y,
        path,
        score_on * rate - r0,
        factor=rate // config.coarse_rate,
        onset_weight=config.onset_weight,
        diagonal_weight=config.diagonal_weight,
    )
    return NoteAlignment(onset, offset, trust.recording, trust.notes)
