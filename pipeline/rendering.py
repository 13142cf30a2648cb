"""FluidSynth rendering of performed notes, with per-note velocity, vibrato and CC11 curves.

Each sounding note gets a MIDI channel of its own, so pitch bend (vibrato) and expression
(CC11) act per note even in polyphony. Events are applied on a control grid of
``control_rate`` Hz; note-on and note-off land on their exact sample.

Rendering streams: the events are made note by note as time reaches them and the audio comes in
blocks (:func:`render_blocks`), so :func:`render_to_file` (what ``performer perform`` writes with)
holds one block, not the score; :func:`render` joins the same blocks into one array.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.audio import clear_peak_timestamp
from pipeline.io import atomic_path
from pipeline.progress import progress_bar
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
    """Shelving EQ along axis 0 (no-op for 0 dB), on a whole array: what a render's blocks, joined, equal
    (rendering streams through :class:`_StreamingEQ`, tested bit for bit against this)."""
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


def rendered_frames(perf: Performance, sample_rate: int, tail: float = 1.0) -> int:
    """How many frames :func:`render` returns: until the last offset plus ``tail`` seconds."""
    end = float(np.max(perf.offset)) if len(perf) else 0.0
    return int(round((end + tail) * sample_rate))


Event = tuple[int, int, int, int, int, int]  # (sample, priority, kind, channel, a, b)


def _note_events(perf: Performance, i: int, chan: int, start: int, stop: int, step: int) -> list[Event]:
    """Note ``i``'s synth events; priorities put controls before a note-on at equal times."""
    key = int(perf.pitch[i])
    events: list[Event] = [
        (stop, 0, 0, chan, key, 0),  # note-off first if a channel is reused at once
        (start, 2, 1, chan, key, int(np.clip(perf.velocity[i], 1, 127))),
    ]
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
    return events


def _events(perf: Performance, sample_rate: int) -> Iterator[Event]:
    """Every note's events in sorted order, made note by note as time reaches each onset: the heap holds
    the events of the notes begun and not yet done, so memory follows the polyphony, not the score's
    length (every event of a note is at or after its onset, so nothing later can sort before the top)."""
    channels = _assign_channels(perf)
    step = max(1, round(sample_rate / perf.control_rate))
    starts = [int(round(perf.onset[i] * sample_rate)) for i in range(len(perf))]
    heap: list[Event] = []
    order = sorted(range(len(perf)), key=starts.__getitem__)
    k = 0
    while k < len(order) or heap:
        if k < len(order) and (not heap or starts[order[k]] <= heap[0][0]):
            i = order[k]
            stop = max(starts[i] + 1, int(round(perf.offset[i] * sample_rate)))
            for event in _note_events(perf, i, int(channels[i]), starts[i], stop, step):
                heapq.heappush(heap, event)
            k += 1
        else:
            yield heapq.heappop(heap)


def _write_float(synth, frames: int) -> np.ndarray:
    """The synth's next ``frames`` frames as float32 ``(frames, 2)``, straight from its float mix.

    Not ``Synth.get_samples``: its 16-bit output adds dither noise from a table FluidSynth fills from
    the C library's ``rand()`` when a process makes its first synth, so a render's last bits depended
    on what else had called ``rand()`` in the process (the evaluate stage's FluidSynth rows moved in the
    4th digit with the order its systems ran in). The float output has no dither and no clipping."""
    import ctypes

    import fluidsynth

    write = fluidsynth._fl.fluid_synth_write_float  # pyfluidsynth wraps only the 16-bit writer
    write.restype = ctypes.c_int
    pointer, count = ctypes.c_void_p, ctypes.c_int  # (synth, len, lout, loff, lincr, rout, roff, rincr)
    write.argtypes = [pointer, count, pointer, count, count, pointer, count, count]
    out = np.empty((frames, 2), np.float32)
    buffer = out.ctypes.data_as(ctypes.c_void_p)
    if write(synth.synth, frames, buffer, 0, 2, buffer, 1, 2) != 0:  # left, right interleaved
        raise RuntimeError("FluidSynth failed to render")
    return out


def _synthesize(
    perf: Performance, instrument: Instrument, sample_rate: int, total: int
) -> Generator[np.ndarray, None, None]:
    """FluidSynth's output for ``perf``, ``total`` frames in all, as the float32 ``(n, 2)`` pieces it is
    asked for in: up to each event's sample, in pieces of at most 2**16 frames."""
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

        pos = 0
        for time, _, kind, chan, a, b in _events(perf, sample_rate):
            time = min(time, total)
            while pos < time:  # bounded pieces of interleaved int16 stereo
                n = min(time - pos, 1 << 16)
                yield _write_float(synth, n)
                pos += n
            if kind == 0:
                synth.noteoff(chan, a)
            elif kind == 1:
                synth.noteon(chan, a, b)
            elif kind == 2:
                synth.pitch_bend(chan, a)
            else:
                synth.cc(chan, 11, a)
        while pos < total:
            n = min(total - pos, 1 << 16)
            yield _write_float(synth, n)
            pos += n
    finally:
        synth.delete()


class _StreamingEQ:
    """:func:`apply_eq` block by block: each shelf's filter state carries over, so the blocks joined are
    exactly (bit for bit) ``apply_eq`` of the whole."""

    def __init__(self, sample_rate: int, low_shelf_db: float, high_shelf_db: float, channels: int = 2) -> None:
        self.filters = [
            [_shelf(sample_rate, freq, gain, high), np.zeros((1, 2, channels))]
            for freq, gain, high in ((300.0, low_shelf_db, False), (3000.0, high_shelf_db, True))
            if abs(gain) > 1e-6
        ]

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if not self.filters:
            return block
        from scipy import signal

        out = block
        for state in self.filters:
            out, state[1] = signal.sosfilt(state[0], out, axis=0, zi=state[1])
        return out.astype(np.float32, copy=False)


BLOCK_FRAMES = 1 << 16  # frames per block of render_blocks


def render_blocks(
    perf: Performance, instrument: Instrument, sample_rate: int, tail: float = 1.0, block_frames: int = BLOCK_FRAMES
) -> Generator[np.ndarray, None, None]:
    """:func:`render`'s output as float32 ``(block_frames, 2)`` blocks (the last one shorter), made one
    at a time: memory does not grow with the score. Joined, they are ``render(...)`` exactly."""
    total = rendered_frames(perf, sample_rate, tail)
    eq = _StreamingEQ(sample_rate, instrument.low_shelf_db, instrument.high_shelf_db)
    block = np.empty((block_frames, 2), np.float32)
    fill = 0
    with contextlib.closing(_synthesize(perf, instrument, sample_rate, total)) as pieces:
        for piece in pieces:
            used = 0
            while used < len(piece):
                n = min(len(piece) - used, block_frames - fill)
                block[fill : fill + n] = piece[used : used + n]
                fill, used = fill + n, used + n
                if fill == block_frames:
                    yield eq(block.copy())
                    fill = 0
    if fill:
        yield eq(block[:fill].copy())


def render(perf: Performance, instrument: Instrument, sample_rate: int, tail: float = 1.0) -> np.ndarray:
    """Render ``perf`` with FluidSynth. Returns stereo float32 ``(samples, 2)``.

    The output lasts until the last offset plus ``tail`` seconds of release/reverb. It is
    :func:`render_blocks` joined; :func:`render_to_file` writes the same samples without holding them.
    """
    out = np.empty((rendered_frames(perf, sample_rate, tail), 2), np.float32)
    pos = 0
    for block in render_blocks(perf, instrument, sample_rate, tail):
        out[pos : pos + len(block)] = block
        pos += len(block)
    assert pos == len(out)
    return out


def render_to_file(
    perf: Performance,
    instrument: Instrument,
    sample_rate: int,
    path: str | Path,
    tail: float = 1.0,
    subtype: str | None = None,
    desc: str = "render",
) -> float:
    """Render ``perf`` block by block straight into the audio file ``path`` (.wav, .flac; ``subtype`` as
    :func:`pipeline.audio.write_audio`'s), with a progress bar on stderr (:mod:`pipeline.progress`).
    Memory does not grow with the score. Returns the peak of the rendered samples.

    The file holds exactly what ``write_audio(path, render(...), sample_rate, subtype)`` writes, the peak
    handling included: write_audio scales audio whose peak is above 1 by 1 / peak (never clipping), and
    a stream cannot know its peak in advance. So the first pass writes the blocks while the running
    peak is <= 1 (the usual case: one pass, as fast as before); once a block goes above 1 it only
    synthesises on to find the peak, and a second pass renders again (FluidSynth is deterministic:
    the same samples) and writes every block divided by that peak. Loud scores thus take twice the
    time, never more memory, and nothing clips. The file is written on a temporary path
    (:func:`pipeline.io.atomic_path`): an interrupted render leaves nothing.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").upper()
    with atomic_path(path) as tmp:
        peak = _write_pass(tmp, fmt, subtype, perf, instrument, sample_rate, tail, desc)
        if peak > 1.0:  # the first pass's file is incomplete: write it again, scaled
            again = f"{desc} (peak {peak:.3g} > 1: again, scaled by 1/{peak:.3g})"
            _write_pass(tmp, fmt, subtype, perf, instrument, sample_rate, tail, again, scale=peak)
        if fmt == "WAV":
            clear_peak_timestamp(tmp)
    return peak


def _write_pass(
    tmp: Path,
    fmt: str,
    subtype: str | None,
    perf: Performance,
    instrument: Instrument,
    sample_rate: int,
    tail: float,
    desc: str,
    scale: float | None = None,
) -> float:
    """One pass of :func:`render_to_file`: the blocks into ``tmp``, divided by ``scale`` if given; returns
    their peak. Without ``scale``, writing stops at the first block above 1 (the pass then only finds the peak)."""
    peak = 0.0
    with (
        sf.SoundFile(str(tmp), "w", sample_rate, 2, subtype=subtype, format=fmt) as out,
        progress_bar(rendered_frames(perf, sample_rate, tail) / sample_rate, desc, "s of audio") as bar,
        contextlib.closing(render_blocks(perf, instrument, sample_rate, tail)) as blocks,
    ):
        for block in blocks:  # never empty
            peak = max(peak, float(np.max(np.abs(block))))
            if scale is not None:
                out.write(block / scale)  # what write_audio does to the whole: audio / peak
            elif peak <= 1.0:
                out.write(block)
            bar.update(len(block) / sample_rate)
    return peak
