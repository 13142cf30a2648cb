"""The DTW reference: a mechanical FluidSynth rendering of the score at a constant tempo.

Plain note-on/note-off events through :func:`pipeline.rendering.render` (no vibrato or
expression curves, no EQ). Repeated pitches can be re-articulated (:func:`detach_repeats`) and
a little reverb added, both of which make the rendering look more like a recording to the DTW
(measured in docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np

from pipeline.rendering import Instrument, Performance, render


def detach_repeats(onset: np.ndarray, offset: np.ndarray, pitch: np.ndarray, gap: float) -> np.ndarray:
    """Offsets that end ``gap`` seconds before the next (later) onset of the same pitch.

    A player re-articulates a repeated note; a legato rendering would run the two into one
    sound without an onset to align to. A note keeps at least half of the time to that onset.
    """
    if gap <= 0:
        return offset
    out = offset.copy()
    for p in np.unique(pitch):
        idx = np.flatnonzero(pitch == p)
        starts = np.unique(onset[idx])
        k = np.searchsorted(starts, onset[idx], side="right")
        later = k < len(starts)
        nxt = starts[np.minimum(k, len(starts) - 1)]
        limit = np.maximum(nxt - gap, onset[idx] + 0.5 * (nxt - onset[idx]))
        out[idx] = np.where(later, np.minimum(out[idx], limit), out[idx])
    return out


def render_reference(
    onset: np.ndarray,
    offset: np.ndarray,
    pitch: np.ndarray,
    velocity: np.ndarray,
    soundfont: str,
    program: int,
    sample_rate: int,
    repeat_gap: float = 0.0,
    reverb_send: int = 0,
    tail: float = 1.0,
    gain: float = 0.3,
) -> np.ndarray:
    """Mono float32 rendering of the notes (times in seconds).

    ``repeat_gap``: see :func:`detach_repeats`; ``reverb_send``: CC91 (0-127) into FluidSynth's
    reverb (0: dry); ``tail``: seconds rendered after the last note-off.
    """
    onset, offset = np.asarray(onset, dtype=float), np.asarray(offset, dtype=float)
    pitch = np.asarray(pitch).astype(np.int64)
    perf = Performance(onset, detach_repeats(onset, offset, pitch, repeat_gap), pitch, np.asarray(velocity))
    instrument = Instrument(soundfont, program=int(program), gain=gain, reverb_send=int(np.clip(reverb_send, 0, 127)))
    return render(perf, instrument, sample_rate, tail=tail).mean(axis=1)
