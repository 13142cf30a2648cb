"""FluidSynth rendering of performed notes, with per-note velocity, vibrato and CC11 curves.

Each sounding note gets a MIDI channel of its own, so pitch bend (vibrato) and expression
(CC11) act per note even in polyphony. Events are applied on a control grid of
``control_rate`` Hz; note-on and note-off land on their exact sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.soundfonts import find_soundfont

BEND_RANGE_CENTS = 200.0  # set explicitly on every channel through RPN 0
_CHANNELS = [c for c in range(32) if c % 16 != 9]  # skip the GM drum channels


@dataclass
class Performance:
    """Notes as played: times in seconds, one entry per note.

    ``bend_cents[i]`` / ``expression[i]`` are optional control curves sampled at
    ``control_rate`` Hz from the note's onset (pitch deviation in cents, CC11 0-127).
    """

    onset: np.ndarray
    offset: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    bend_cents: list[np.ndarray] | None = None
    expression: list[np.ndarray] | None = None
    control_rate: float = 200.0

    def __len__(self) -> int:
        return len(self.onset)


@dataclass(frozen=True)
class Instrument:
    """A SoundFont preset and the room it plays in."""

    soundfont: str = "FluidR3_GM.sf2"
    program: int = 40  # GM violin
    bank: int = 0
    gain: float = 0.3
    reverb_send: int = 40  # CC91, 0-127
    reverb_room: float = 0.5
    reverb_damping: float = 0.3
    reverb_width: float = 0.8
    reverb_level: float = 0.7
    low_shelf_db: float = 0.0  # EQ applied after rendering: shelf below 300 Hz
    high_shelf_db: float = 0.0  # shelf above 3 kHz
    extra: dict = field(default_factory=dict, compare=False)


def _shelf(sample_rate: int, freq: float, gain_db: float, high: bool) -> np.ndarray:
    """RBJ cookbook shelving biquad as second-order sections."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * freq / sample_rate
    cos, alpha = np.cos(w0), np.sin(w0) / 2 * np.sqrt(2)
    sign = 1 if high else -1
    b0 = a * ((a + 1) + sign * (a - 1) * cos + 2 * np.sqrt(a) * alpha)
    b1 = -2 * sign * a * ((a - 1) + sign * (a + 1) * cos)
    b2 = a * ((a + 1) + sign * (a - 1) * cos - 2 * np.sqrt(a) * alpha)
    a0 = (a + 1) - sign * (a - 1) * cos + 2 * np.sqrt(a) * alpha
    a1 = 2 * sign * ((a - 1) - sign * (a + 1) * cos)
    a2 = (a + 1) - sign * (a - 1) * cos - 2 * np.sqrt(a) * alpha
    return np.array([[b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0]])


def apply_eq(audio: np.ndarray, sample_rate: int, low_shelf_db: float, high_shelf_db: float) -> np.ndarray:
    """Shelving EQ along axis 0 (no-op for 0 dB)."""
    from scipy import signal  # local: ~80 MB of imports that the dry DTW reference never needs

    for freq, gain, high in ((300.0, low_shelf_db, False), (3000.0, high_shelf_db, True)):
        if abs(gain) > 1e-6:
            audio = signal.sosfilt(_shelf(sample_rate, freq, gain, high), audio, axis=0)
    return audio.astype(np.float32, copy=False)


def _assign_channels(perf: Performance) -> np.ndarray:
    """Give each note a channel no other note holds at the same time (least recently freed first)."""
    free_at = dict.fromkeys(_CHANNELS, -np.inf)
    channels = np.zeros(len(perf), dtype=np.int64)
    for i in np.argsort(perf.onset, kind="stable"):
        idle = [c for c in _CHANNELS if free_at[c] <= perf.onset[i]]
        pool = idle or _CHANNELS  # more than 30 simultaneous notes: share the longest-free channel
        chan = min(pool, key=lambda c: free_at[c])
        channels[i] = chan
        free_at[chan] = perf.offset[i]
    return channels


def render(perf: Performance, instrument: Instrument, sample_rate: int, tail: float = 1.0) -> np.ndarray:
    """Render ``perf`` with FluidSynth. Returns stereo float32 ``(samples, 2)``.

    The output lasts until the last offset plus ``tail`` seconds of release/reverb.
    """
    import fluidsynth  # needs libfluidsynth3 (scripts/setup.sh)

    settings = {
        "synth.dynamic-sample-loading": 1,  # decode only the samples of the preset in use (seconds saved per .sf3)
        "synth.reverb.active": int(instrument.reverb_send > 0),
        "synth.chorus.active": 0,  # CC93 is 0 on every channel anyway
    }
    synth = fluidsynth.Synth(gain=instrument.gain, samplerate=sample_rate, channels=32, **settings)
    try:
        sfid = synth.sfload(str(find_soundfont(instrument.soundfont)))
        synth.set_reverb(
            instrument.reverb_room, instrument.reverb_damping, instrument.reverb_width, instrument.reverb_level
        )
        for chan in _CHANNELS:
            synth.program_select(chan, sfid, instrument.bank, instrument.program)
            for ctrl, value in (
                (101, 0),
                (100, 0),
                (6, int(BEND_RANGE_CENTS // 100)),
                (38, 0),
                (91, instrument.reverb_send),
                (93, 0),
            ):
                synth.cc(chan, ctrl, value)

        channels = _assign_channels(perf)
        step = max(1, round(sample_rate / perf.control_rate))
        # events: (sample, priority, kind, channel, a, b); controls before note-on at equal times
        events: list[tuple[int, int, int, int, int, int]] = []
        for i in range(len(perf)):
            start = int(round(perf.onset[i] * sample_rate))
            stop = max(start + 1, int(round(perf.offset[i] * sample_rate)))
            chan, key = int(channels[i]), int(perf.pitch[i])
            events.append((stop, 0, 0, chan, key, 0))  # note-off first if a channel is reused at once
            events.append((start, 2, 1, chan, key, int(np.clip(perf.velocity[i], 1, 127))))
            for kind, curves in ((2, perf.bend_cents), (3, perf.expression)):
                if curves is None:
                    continue
                curve = np.asarray(curves[i])
                n = min(len(curve), (stop - start) // step + 1)
                if kind == 2:
                    values = np.round(curve[:n] / BEND_RANGE_CENTS * 8192).astype(int)
                else:
                    values = np.clip(np.round(curve[:n]), 0, 127).astype(int)
                last = None
                for j in range(n):
                    if values[j] != last:
                        events.append((start + j * step, 1, kind, chan, int(values[j]), 0))
                        last = values[j]
            if perf.bend_cents is not None:  # leave the channel in tune for its next note
                events.append((stop, 1, 2, chan, 0, 0))
        events.sort()

        end = float(np.max(perf.offset)) if len(perf) else 0.0
        total = int(round((end + tail) * sample_rate))
        out = np.zeros((total, 2), dtype=np.float32)

        def play(begin: int, end: int) -> None:
            for a in range(begin, end, 1 << 16):  # bounded blocks of interleaved int16 stereo
                b = min(end, a + (1 << 16))
                out[a:b] = synth.get_samples(b - a).reshape(-1, 2) / np.float32(32768.0)

        pos = 0
        for time, _, kind, chan, a, b in events:
            time = min(time, total)
            if time > pos:
                play(pos, time)
                pos = time
            if kind == 0:
                synth.noteoff(chan, a)
            elif kind == 1:
                synth.noteon(chan, a, b)
            elif kind == 2:
                synth.pitch_bend(chan, a)
            else:
                synth.cc(chan, 11, a)
        if pos < total:
            play(pos, total)
    finally:
        synth.delete()
    return apply_eq(out, sample_rate, instrument.low_shelf_db, instrument.high_shelf_db)
