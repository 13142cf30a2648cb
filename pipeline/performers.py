"""Virtual performers: deterministic, clearly different ways of playing a score.

A performer turns a NoteTable (ticks) into a Performance (seconds plus control curves)
through a tempo curve (the score's tempo map x a global tempo factor, phrase-level rubato,
final ritardando), onset jitter, articulation, dynamics (velocity arcs and CC11 swells) and
vibrato; it plays on its own Instrument (SoundFont preset, reverb, EQ). The performed onsets and
offsets are the ground truth of the built-in corpus.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from pipeline.errors import PipelineError
from pipeline.rendering import Instrument, Performance
from pipeline.scores import NoteTable

CONTROL_RATE = 200.0  # Hz of the vibrato / expression curves


@dataclass(frozen=True)
class VirtualPerformer:
    name: str
    instrument: Instrument
    tempo_factor: float = 1.0  # x the score's tempo
    rubato_depth: float = 0.1  # fractional tempo swing inside a phrase
    phrase_quarters: float = 8.0
    final_ritardando: float = 0.3  # fractional slow-down reached at the last note
    ritardando_quarters: float = 4.0
    jitter_ms: float = 5.0  # std of onset noise
    legato: float = 0.9  # performed / written duration
    velocity: int = 85
    velocity_range: int = 15  # phrase arc amplitude
    swell_depth: float = 0.3  # CC11 dip at note start/end (0 = flat)
    vibrato_rate: float = 5.5  # Hz
    vibrato_cents: float = 20.0
    vibrato_delay: float = 0.15  # seconds before vibrato sets in

    def tempo_curve(self, notes: NoteTable, rng: np.random.Generator) -> np.ndarray:
        """Seconds at every tick 0..length (inclusive): the performed time map.

        The tempo at each tick is the score's tempo map there (``notes.tempo_at``: every tempo change
        of the score) x ``tempo_factor`` x the rubato and final-ritardando multiplier."""
        length = notes.length_ticks
        ticks = np.arange(length + 1)
        quarters = ticks / notes.resolution
        phrase = quarters / self.phrase_quarters
        index = np.floor(phrase).astype(int)
        depth = self.rubato_depth * rng.uniform(0.5, 1.5, size=index.max() + 1)[index]
        u = phrase - index
        # push through the middle of a phrase, broaden towards its end
        multiplier = 1.0 + depth * (np.sin(np.pi * u) - 0.5) - 1.5 * depth * u**6
        tail = np.clip((quarters - (quarters[-1] - self.ritardando_quarters)) / self.ritardando_quarters, 0, 1)
        multiplier *= 1.0 - self.final_ritardando * tail**2
        multiplier = np.maximum(multiplier, 0.25)
        qpm = notes.tempo_at(ticks) * self.tempo_factor * multiplier  # one tempo: as a scalar, bit for bit
        sec_per_tick = 60.0 / (qpm * notes.resolution)
        return np.concatenate([[0.0], np.cumsum(sec_per_tick[:-1])])

    def perform(self, notes: NoteTable, seed: int = 0) -> Performance:
        """Play ``notes``; the same (performer, piece, seed) always gives the same performance."""
        if len(notes) == 0:
            raise PipelineError(f"performer {self.name}: nothing to play in {notes.name or 'score'}")
        rng = np.random.default_rng([seed, zlib.crc32(self.name.encode()), zlib.crc32(notes.name.encode())])
        time_at = self.tempo_curve(notes, rng)
        written_on = time_at[notes.onset]
        written_off = time_at[notes.offset]

        # one jitter per distinct onset (chord notes move together), bounded by the gaps around it
        groups, group_of = np.unique(notes.onset, return_inverse=True)
        group_time = time_at[groups]
        gaps = np.diff(group_time)
        room = np.minimum(np.r_[np.inf, gaps], np.r_[gaps, np.inf]) * 0.3
        jitter = np.clip(rng.normal(0, self.jitter_ms / 1000, len(groups)), -room, room)
        onset = written_on + jitter[group_of] + rng.normal(0, 0.002, len(notes)) * (np.bincount(group_of)[group_of] > 1)
        onset = np.maximum(onset, 0.0)
        duration = np.maximum((written_off - written_on) * self.legato, 0.06)
        offset = onset + duration

        # dynamics: phrase arc + noise
        phrase_pos = (notes.onset / notes.resolution / self.phrase_quarters) % 1.0
        velocity = (
            self.velocity + self.velocity_range * (np.sin(np.pi * phrase_pos) - 0.5) + rng.normal(0, 4, len(notes))
        )
        velocity = np.clip(np.round(velocity), 20, 127).astype(int)

        bends, expressions = [], []
        rate = self.vibrato_rate * rng.uniform(0.95, 1.05, len(notes))
        phase = rng.uniform(0, 2 * np.pi, len(notes))
        for i, dur in enumerate(duration):
            t = np.arange(int(dur * CONTROL_RATE) + 1) / CONTROL_RATE
            ramp = np.clip((t - self.vibrato_delay) / 0.15, 0.0, 1.0)
            bends.append(self.vibrato_cents * ramp * np.sin(2 * np.pi * rate[i] * t + phase[i]))
            # messa di voce: a bowed attack, a swell to mid-note, a longer diminuendo
            v = np.clip(t / max(dur, 1e-3), 0, 1)
            shape = np.where(v < 0.4, np.sin(np.pi * np.minimum(v, 0.4) / 0.8) ** 0.5, np.cos(np.pi * (v - 0.4) / 1.2))
            attack = np.clip(t / 0.03, 0, 1)
            expressions.append(127 * (1 - self.swell_depth * (1 - shape)) * (0.6 + 0.4 * attack))
        return Performance(onset, offset, notes.pitch.copy(), velocity, bends, expressions, CONTROL_RATE)


PERFORMERS: dict[str, VirtualPerformer] = {
    p.name: p
    for p in (
        VirtualPerformer(
            "aurora",
            Instrument("FluidR3_GM.sf2", program=40, reverb_send=30, high_shelf_db=3.0),
            tempo_factor=1.12,
            rubato_depth=0.06,
            phrase_quarters=8,
            final_ritardando=0.25,
            jitter_ms=4,
            legato=0.95,
            velocity=92,
            velocity_range=14,
            swell_depth=0.25,
            vibrato_rate=6.2,
            vibrato_cents=16,
            vibrato_delay=0.10,
        ),
        VirtualPerformer(
            "bruno",
            Instrument(
                "FluidR3_GM.sf2", program=41, reverb_send=80, reverb_room=0.8, low_shelf_db=3.0, high_shelf_db=-4.0
            ),
            tempo_factor=0.85,
            rubato_depth=0.18,
            phrase_quarters=16,
            final_ritardando=0.45,
            jitter_ms=9,
            legato=1.0,
            velocity=72,
            velocity_range=22,
            swell_depth=0.4,
            vibrato_rate=5.0,
            vibrato_cents=30,
            vibrato_delay=0.20,
        ),
        VirtualPerformer(
            "chiara",
            Instrument("TimGM6mb.sf2", program=40, reverb_send=20, reverb_room=0.3, high_shelf_db=1.5),
            tempo_factor=1.0,
            rubato_depth=0.10,
            phrase_quarters=4,
            final_ritardando=0.3,
            jitter_ms=6,
            legato=0.7,
            velocity=102,
            velocity_range=10,
            swell_depth=0.15,
            vibrato_rate=6.8,
            vibrato_cents=12,
            vibrato_delay=0.08,
        ),
        VirtualPerformer(
            "dmitri",
            Instrument("FluidR3_GM.sf2", program=110, reverb_send=55, low_shelf_db=2.0),
            tempo_factor=0.95,
            rubato_depth=0.14,
            phrase_quarters=8,
            final_ritardando=0.6,
            jitter_ms=14,
            legato=0.85,
            velocity=80,
            velocity_range=26,
            swell_depth=0.45,
            vibrato_rate=5.6,
            vibrato_cents=24,
            vibrato_delay=0.15,
        ),
    )
}


def get_performer(name: str) -> VirtualPerformer:
    try:
        return PERFORMERS[name]
    except KeyError:
        raise PipelineError(f"unknown performer {name!r} (known: {', '.join(PERFORMERS)})") from None


# written range (lowest, highest MIDI pitch) of the General MIDI programs the performers and the README
# use: outside it a SoundFont still sounds, but no player could (a score for another instrument?)
PROGRAM_RANGES = {
    0: (21, 108),  # acoustic grand piano
    40: (55, 103),  # violin
    41: (48, 91),  # viola
    42: (36, 81),  # cello
    43: (28, 67),  # contrabass
    52: (41, 84),  # choir aahs (voices)
    73: (60, 96),  # flute
    110: (55, 91),  # fiddle
}


class RangeWarning(UserWarning):
    """A score has notes outside the range of the instrument that plays it."""


def warn_out_of_range(notes: NoteTable, program: int, who: str) -> int:
    """Warn (one line) when ``notes`` go outside the written range of GM ``program``; the count outside."""
    if program not in PROGRAM_RANGES or len(notes) == 0:
        return 0
    low, high = PROGRAM_RANGES[program]
    outside = int(np.sum((notes.pitch < low) | (notes.pitch > high)))
    if outside:
        import warnings

        warnings.warn(
            f"{outside} of {len(notes)} notes lie outside {who}'s range (MIDI {low}-{high}; lowest "
            f"{int(notes.pitch.min())}, highest {int(notes.pitch.max())}): played anyway",
            RangeWarning,
            stacklevel=2,
        )
    return outside
