"""The DTW reference: a mechanical FluidSynth rendering of the score at a constant tempo.

Unlike :func:`pipeline.rendering.render` (per-note vibrato and expression curves, EQ), this
plays plain note-on/note-off events, and it asks FluidSynth to load only the samples of the
preset it uses (``synth.dynamic-sample-loading``): decoding the whole MuseScore General
.sf3 takes seconds and hundreds of MB, the violin samples alone a few ms. Repeated pitches can
be re-articulated (:func:`detach_repeats`) and a little reverb added, both of which make the
rendering look more like a recording to the DTW (measured in docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np

from pipeline.soundfonts import find_soundfont

_CHANNELS = [c for c in range(16) if c != 9]  # GM drum channel skipped


def _channels(onset: np.ndarray, offset: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """A channel per note so that two sounding notes of the same pitch never share one."""
    busy: dict[tuple[int, int], float] = {}
    out = np.zeros(len(onset), dtype=np.int64)
    for i in np.argsort(onset, kind="stable"):
        for chan in _CHANNELS:
            if busy.get((chan, int(pitch[i])), -np.inf) <= onset[i]:
                break
        else:
            chan = _CHANNELS[0]
        out[i] = chan
        busy[(chan, int(pitch[i]))] = offset[i]
    return out


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
    """Mono float32 rendering of the notes (times in seconds), without chorus.

    ``repeat_gap``: see :func:`detach_repeats`; ``reverb_send``: CC91 (0-127) into FluidSynth's
    reverb (0: dry); ``tail``: seconds rendered after the last note-off.
    """
    import fluidsynth  # needs libfluidsynth3 (scripts/setup.sh)

    onset, offset = np.asarray(onset, dtype=float), np.asarray(offset, dtype=float)
    pitch = np.asarray(pitch).astype(np.int64)
    offset = detach_repeats(onset, offset, pitch, repeat_gap)
    channels = _channels(onset, offset, pitch)
    start = np.round(onset * sample_rate).astype(np.int64)
    stop = np.maximum(start + 1, np.round(offset * sample_rate).astype(np.int64))
    # (sample, 0 = note-off before 1 = note-on at the same sample, note index)
    events = sorted([(int(s), 0, i) for i, s in enumerate(stop)] + [(int(s), 1, i) for i, s in enumerate(start)])
    total = int(round((max(float(np.max(offset)), 0.0) + tail) * sample_rate))
    out = np.zeros(total, dtype=np.float32)

    settings = {
        "synth.dynamic-sample-loading": 1,  # decode only the samples of the presets in use
        "synth.reverb.active": int(reverb_send > 0),
        "synth.chorus.active": 0,
    }
    synth = fluidsynth.Synth(gain=gain, samplerate=sample_rate, channels=16, **settings)

    def play(begin: int, end: int) -> None:
        for a in range(begin, end, 1 << 16):  # bounded blocks: get_samples returns interleaved int16 stereo
            b = min(end, a + (1 << 16))
            stereo = synth.get_samples(b - a).reshape(-1, 2)
            out[a:b] = (stereo[:, 0].astype(np.float32) + stereo[:, 1]) / np.float32(65536.0)

    try:
        if reverb_send > 0:
            synth.set_reverb(0.5, 0.3, 0.8, 0.7)  # roomsize, damping, width, level (pipeline.rendering's defaults)
        sfid = synth.sfload(str(find_soundfont(soundfont)))
        for chan in _CHANNELS:
            synth.program_select(chan, sfid, 0, int(program))
            synth.cc(chan, 91, int(np.clip(reverb_send, 0, 127)))
            synth.cc(chan, 93, 0)
        pos = 0
        for time, kind, i in events:
            time = min(time, total)
            if time > pos:
                play(pos, time)
                pos = time
            chan, key = int(channels[i]), int(pitch[i])
            if kind:
                synth.noteon(chan, key, int(np.clip(velocity[i], 1, 127)))
            else:
                synth.noteoff(chan, key)
        if pos < total:
            play(pos, total)
    finally:
        synth.delete()
    return out
