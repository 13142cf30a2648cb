"""Pitch metrics on the monophonic *notes* of any clip: raw pitch accuracy, voicing recall and
note pitch accuracy.

An f0 tracker follows one pitch, so only frames where exactly one score note sounds are scored:
a clip with a double stop (on real violin almost every 5-s clip has one) is scored on its other
frames, not dropped. What the tracker says over silence, rests or double stops is no pitch error.

* ``voicing_recall``: share of those frames the tracker calls voiced;
* ``raw_pitch_accuracy``: share of those frames whose f0 estimate lies within 50 cents of a pitch
  sounding there, whether or not the tracker calls the frame voiced (as mir_eval's raw pitch
  accuracy: a quiet but right estimate is right). Octave errors are wrong;
* ``note_pitch_accuracy`` (:func:`score_note_pitch`): per note, the median f0 over the frames where
  it sounds alone, within 50 cents of the note's pitch; pooled over the notes (a note's pitch as a
  listener hears it: one wrong frame at an attack does not make the note wrong).

Keeping the two apart separates "plays the wrong pitch" from "is too quiet / noisy to be called
voiced", which one number (pipeline.evaluation.metrics.pitch_accuracy) mixes.

Two trackers, chosen by measurement (benchmarks/transcriber_tuning.py, docs/benchmarks.md,
"f0 tracker and transcriber"):

* ``"pyin"``: librosa's probabilistic YIN with ``fill_na=None`` (its best f0 guess in unvoiced
  frames too);
* ``"contour"``: the Basic Pitch network's pitch contour (pipeline.evaluation.transcription), the
  argmax over its 1/3-semitone bins refined by the neighbouring bins; voiced where the contour
  peak reaches ``CONTOUR_VOICING_THRESHOLD``.

Measured (benchmarks/transcriber_tuning.py, 2-core AMD EPYC, one thread; the 20 monophonic
recordings of the built-in corpus outside the test split, 98 clips of 5 s, each scored against
its own aligned score, i.e. the ceiling a system can reach): the contour tracker has raw pitch
accuracy 0.945 (pYIN 0.908), voicing recall 0.961 (pYIN 0.956) and takes 0.19 s per clip,
network included (pYIN 1.64 s). Without the 30-ms transition tolerance: 0.866 vs 0.843. pYIN
lags at note changes (16 % of frames 60-100 ms from a change wrong, the contour 2 %) and jumps to
a harmonic (a twelfth or an octave up) in heavy reverb (haydn opus1no1, bruno: 0.52 vs 0.87).
Per recording the contour tracker scores 0.87-0.99; three recordings stay below 0.9 (fast
passages with heavy reverb). Hence the default ``"contour"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.evaluation.transcription import (
    CONTOUR_BIN_OF_LOWEST_MIDI,
    CONTOUR_BINS_PER_SEMITONE,
    LOWEST_MIDI,
    Posteriors,
    Transcriber,
    reference_notes,
    sounding_pitches,
)

TRACKERS = ("pyin", "contour")
DEFAULT_TRACKER = "contour"
CONTOUR_VOICING_THRESHOLD = 0.3  # silence peaks at ~0.17, white noise at ~0.34, steady tones at 0.65-0.9
TRANSITION_SECONDS = 0.03  # see score_f0; chosen by measurement (docs/benchmarks.md)
PYIN_FMIN = 65.0  # Hz: C2, below the cello's and the chorale bass's range
PYIN_FMAX = 2100.0  # Hz: C7, above the violin's
PYIN_FRAME_SECONDS = 0.064  # analysis window, rounded up to a power of two (1024 samples at 16 kHz; four periods of C2)


@dataclass
class F0Track:
    """Best f0 guess per frame (MIDI; NaN only where the tracker has none) and its voicing call."""

    times: np.ndarray  # (F,) seconds, frame centres
    midi: np.ndarray  # (F,) float64
    voiced: np.ndarray  # (F,) bool


def pyin_track(
    audio: np.ndarray,
    sample_rate: int,
    hop_length: int,
    fmin: float = PYIN_FMIN,
    fmax: float = PYIN_FMAX,
    frame_seconds: float = PYIN_FRAME_SECONDS,
) -> F0Track:
    """librosa.pyin on centred frames (frame ``k`` at ``k * hop_length`` samples)."""
    import librosa

    audio = np.asarray(audio, np.float32)
    frame_length = int(2 ** np.ceil(np.log2(frame_seconds * sample_rate)))
    if len(audio) == 0:
        return F0Track(np.zeros(0), np.zeros(0), np.zeros(0, bool))
    f0, voiced, _ = librosa.pyin(
        audio,
        fmin=fmin,
        fmax=fmax,
        sr=sample_rate,
        frame_length=frame_length,
        hop_length=hop_length,
        center=True,
        fill_na=None,
    )
    times = np.arange(len(f0)) * hop_length / sample_rate
    with np.errstate(invalid="ignore", divide="ignore"):
        midi = 69.0 + 12.0 * np.log2(np.asarray(f0, np.float64) / 440.0)
    return F0Track(times, midi, np.asarray(voiced, bool))


def contour_track(post: Posteriors, voicing_threshold: float = CONTOUR_VOICING_THRESHOLD) -> F0Track:
    """f0 from the Basic Pitch contour: argmax bin, refined by the salience-weighted mean of it and
    its two neighbours (bins are 33 cents apart; the mean recovers most of the rest)."""
    contour = np.asarray(post.contour, np.float64)
    if contour.shape[0] == 0:
        return F0Track(np.asarray(post.frame_times, np.float64), np.zeros(0), np.zeros(0, bool))
    peak = contour.argmax(axis=1)
    rows = np.arange(len(peak))
    lo, hi = np.maximum(peak - 1, 0), np.minimum(peak + 1, contour.shape[1] - 1)
    weights = np.stack([contour[rows, lo], contour[rows, peak], contour[rows, hi]], axis=1)
    bins = np.stack([lo, peak, hi], axis=1).astype(np.float64)
    refined = (weights * bins).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-12)
    midi = LOWEST_MIDI + (refined - CONTOUR_BIN_OF_LOWEST_MIDI) / CONTOUR_BINS_PER_SEMITONE
    return F0Track(np.asarray(post.frame_times, np.float64), midi, contour[rows, peak] >= voicing_threshold)


def _nearest(track: F0Track, times: np.ndarray) -> F0Track:
    """``track`` read at ``times`` (nearest frame), so both trackers are scored on one grid."""
    if len(track.times) == 0:
        return F0Track(times, np.full(len(times), np.nan), np.zeros(len(times), bool))
    idx = np.clip(np.searchsorted(track.times, times), 1, len(track.times) - 1)
    idx = np.where(np.abs(track.times[idx - 1] - times) <= np.abs(track.times[idx] - times), idx - 1, idx)
    return F0Track(times, track.midi[idx], track.voiced[idx])


def f0_track(
    audio: np.ndarray,
    sample_rate: int,
    hop_length: int,
    tracker: str = DEFAULT_TRACKER,
    transcriber: Transcriber | None = None,
    posteriors: Posteriors | None = None,
) -> F0Track:
    """The chosen tracker's f0 on the grid ``k * hop_length / sample_rate`` (frame centres).

    For ``"contour"``, pass ``posteriors`` if the network has already run on this audio.
    """
    if tracker not in TRACKERS:
        raise ValueError(f"unknown f0 tracker {tracker!r} (choose from {', '.join(TRACKERS)})")
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if tracker == "pyin":
        return pyin_track(audio, sample_rate, hop_length)
    if posteriors is None:
        posteriors = (transcriber or Transcriber()).posteriors(audio, sample_rate)
    times = np.arange(-(-len(audio) // hop_length)) * hop_length / sample_rate
    return _nearest(contour_track(posteriors), times)


def score_f0(
    track: F0Track,
    ref_intervals: np.ndarray,
    ref_pitches: np.ndarray,
    tuning_cents: float = 0.0,
    tolerance_cents: float = 50.0,
    transition_seconds: float = TRANSITION_SECONDS,
) -> dict[str, float]:
    """Raw pitch accuracy and voicing recall of ``track`` over the frames where exactly one score note
    sounds (NaN when there is none: silence, rests and double stops are not scored).

    Within ``transition_seconds`` of a note change the pitch of a note sounding that close counts
    too: the reference is a score aligned on mel frames, and reverb and slow attacks smear the
    change in the audio (on real recordings half the frames at a change fail without it, while
    0.1 % fail mid-note). Octave errors stay wrong.
    """
    intervals, pitches = reference_notes(ref_intervals, ref_pitches, tuning_cents)
    times = np.asarray(track.times, np.float64)
    sounding = sounding_pitches(times, intervals, pitches)
    scored = sounding_alone(times, intervals).any(axis=1)
    if not scored.any():
        return {"raw_pitch_accuracy": float("nan"), "voicing_recall": float("nan")}
    widened = intervals + np.array([-transition_seconds, transition_seconds])
    accepted = sounding_pitches(times, widened, pitches) if transition_seconds > 0 else sounding
    right = np.array(
        [
            len(s) > 0 and np.isfinite(m) and bool(np.any(np.abs(a - m) * 100.0 <= tolerance_cents))
            for s, a, m in zip(sounding, accepted, track.midi)
        ],
        bool,
    )
    return {"raw_pitch_accuracy": float(right[scored].mean()), "voicing_recall": float(track.voiced[scored].mean())}


def sounding_alone(times: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """(F, N) bool: note ``n`` sounds at ``times[f]`` (onset <= t < offset) and no other note does
    (two notes of one pitch, a unison double stop, are two notes)."""
    intervals = np.asarray(intervals, np.float64).reshape(-1, 2)
    on = (times[:, None] >= intervals[None, :, 0]) & (times[:, None] < intervals[None, :, 1])
    return on & (on.sum(axis=1, keepdims=True) == 1)


def score_note_pitch(
    track: F0Track,
    ref_intervals: np.ndarray,
    ref_pitches: np.ndarray,
    tuning_cents: float = 0.0,
    tolerance_cents: float = 50.0,
) -> tuple[int, int]:
    """``(right, notes)``: of the score notes that sound alone on at least one frame of ``track``
    (``notes``), how many have a median f0 over those frames within ``tolerance_cents`` of their
    pitch (``right``; a frame without an f0 estimate counts as wrong: the median is then NaN where
    most frames have none)."""
    intervals, pitches = reference_notes(ref_intervals, ref_pitches, tuning_cents)
    alone = sounding_alone(np.asarray(track.times, np.float64), intervals)
    midi = np.where(np.isfinite(track.midi), track.midi, np.inf)  # no estimate: never within tolerance
    right = notes = 0
    for n in np.flatnonzero(alone.any(axis=0)):
        notes += 1
        median = float(np.median(midi[alone[:, n]]))
        right += bool(np.isfinite(median) and abs(median - pitches[n]) * 100.0 <= tolerance_cents)
    return right, notes


def f0_metrics(
    audio: np.ndarray,
    sample_rate: int,
    hop_length: int,
    ref_intervals: np.ndarray,
    ref_pitches: np.ndarray,
    tuning_cents: float = 0.0,
    tracker: str = DEFAULT_TRACKER,
    transcriber: Transcriber | None = None,
    posteriors: Posteriors | None = None,
    transition_seconds: float = TRANSITION_SECONDS,
) -> dict[str, float]:
    """``{"raw_pitch_accuracy", "voicing_recall", "note_pitch_right", "note_pitch_notes"}`` of ``audio``
    against score notes (``ref_intervals`` seconds, ``ref_pitches`` MIDI), scored every ``hop_length``
    samples on the frames where one note sounds alone (:func:`score_f0`, :func:`score_note_pitch`)."""
    track = f0_track(audio, sample_rate, hop_length, tracker, transcriber, posteriors)
    out = score_f0(track, ref_intervals, ref_pitches, tuning_cents, transition_seconds=transition_seconds)
    right, notes = score_note_pitch(track, ref_intervals, ref_pitches, tuning_cents)
    return {**out, "note_pitch_right": float(right), "note_pitch_notes": float(notes)}
