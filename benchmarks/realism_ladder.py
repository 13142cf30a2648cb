"""Realism's validation ladder on real violin (figures: docs/benchmarks.md, "Realism").

The reference is fitted on every 5-second clip of some Bach Violin Dataset recordings; clips of *other*
recordings (other movements, another violinist) are then scored as they are and as degraded versions
of themselves, which a realism score must rank in this order (lower = more real):

    recording  <  Griffin-Lim of its mel  <  each of: low-passed at 3 kHz, additive sines of its notes
    (no vibrato, no noise), FluidSynth's violin playing its notes, FluidSynth with another instrument.

Every variant is made from the clip itself (same notes, same timing: the alignment's), so a variant
differs from the recording only in how it sounds. tests/test_realism.py asserts the ladder on a few
clips; this script prints it for every variant of :data:`VARIANTS`, with the time per clip.

    python benchmarks/realism_ladder.py                       # the data in ../shared/data/bach-violin
    python benchmarks/realism_ladder.py --clips 8 --json realism.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.audio import load_audio, resample
from pipeline.config import MelConfig, Params, load_params
from pipeline.evaluation.realism import GROUPS, RealismReference
from pipeline.mel import log_mel
from pipeline.rendering import Instrument, Performance, render
from pipeline.spectrogram import griffin_lim_from_mel

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "bach-violin"
REFERENCE = (
    "john-garner/john-garner_bwv1002_mov6",
    "john-garner/john-garner_bwv1002_mov7",
    "oliver-colbentson/oliver-colbentson_bwv1006_mov5",
    "oliver-colbentson/oliver-colbentson_bwv1006_mov6",
)
HELD_OUT = ("oliver-colbentson/oliver-colbentson_bwv1006_mov7", "minji-kim/minji-kim_bwv1003_mov3")
LOW_PASS_HZ = 3000.0
OTHER_PROGRAMS = {"piano": 0, "clarinet": 71}  # GM programs of the wrong-instrument rungs
LADDER = ("recording", "griffin-lim", "low-pass 3 kHz", "additive sines", "fluidsynth violin", *OTHER_PROGRAMS)


@dataclass
class Clip:
    audio: np.ndarray  # (clip samples,) at the mel recipe's rate
    onset: np.ndarray  # seconds from the clip's start, the clip's notes (aligned)
    offset: np.ndarray
    pitch: np.ndarray  # MIDI


def read_recording(name: str, sample_rate: int, root: Path = DATA) -> tuple[np.ndarray, pd.DataFrame]:
    """A recording at ``sample_rate`` and its aligned notes (onset, offset in seconds; pitch)."""
    collection, stem = name.split("/")
    audio_path = next((root / "audio" / collection).glob(f"{stem}.*"))
    audio, _ = load_audio(audio_path, sample_rate)
    notes = pd.read_csv(root / "notes" / collection / f"{stem}.csv")
    times = pd.read_csv(root / "alignments" / collection / f"{stem}.csv")
    return audio, pd.DataFrame({"onset": times["start"], "offset": times["end"], "pitch": notes["pitch"]})


def cut_clips(audio: np.ndarray, notes: pd.DataFrame, mel: MelConfig, count: int | None) -> list[Clip]:
    """``count`` clips spread evenly between the first and last note (None: every clip, back to back)."""
    n = mel.clip_frames * mel.hop_length
    first = int(notes["onset"].min() * mel.sample_rate)
    last = min(len(audio), int(notes["offset"].max() * mel.sample_rate)) - n
    starts = list(range(first, last + 1, n)) if count is None else [int(s) for s in np.linspace(first, last, count)]
    clips = []
    for start in starts:
        t0, t1 = start / mel.sample_rate, (start + n) / mel.sample_rate
        inside = notes[(notes["offset"] > t0) & (notes["onset"] < t1)]
        clips.append(
            Clip(
                audio[start : start + n].copy(),
                np.maximum(inside["onset"].to_numpy() - t0, 0.0),
                np.minimum(inside["offset"].to_numpy() - t0, t1 - t0),
                inside["pitch"].to_numpy(),
            )
        )
    return clips


def _level(audio: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``audio`` at ``like``'s RMS (realism is level-free; the level only keeps the variants comparable)."""
    rms = np.sqrt(np.mean(np.square(audio, dtype=np.float64)))
    return (audio * (np.sqrt(np.mean(np.square(like, dtype=np.float64))) / max(rms, 1e-12))).astype(np.float32)


def additive(clip: Clip, sample_rate: int, partials: int = 12) -> np.ndarray:
    """The clip's notes as steady harmonic sines (1/k partials under Nyquist, 10 ms ramps): the same pitch,
    no vibrato, no bow noise, no room."""
    n = len(clip.audio)
    t = np.arange(n) / sample_rate
    out = np.zeros(n)
    ramp = 0.01
    for onset, offset, pitch in zip(clip.onset, clip.offset, clip.pitch):
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        envelope = np.clip(np.minimum(t - onset, offset - t) / ramp, 0, 1)
        for k in range(1, partials + 1):
            if k * f0 < sample_rate / 2:
                out += envelope * np.sin(2 * np.pi * k * f0 * t) / k
    return _level(out, clip.audio)


def fluidsynth(clip: Clip, params: Params, program: int) -> np.ndarray:
    """The clip's notes played by FluidSynth (FluidR3 GM, ``program``) at the built-in corpus's render rate,
    resampled to the mel recipe's: how the built-in corpus's "recordings" are made."""
    rate = params.data.builtin.sample_rate
    perf = Performance(clip.onset, clip.offset, clip.pitch.astype(int), np.full(len(clip.pitch), 80))
    audio = render(perf, Instrument(program=program), rate).mean(axis=1)
    audio = resample(audio, rate, params.mel.sample_rate)
    n = len(clip.audio)
    return _level(np.pad(audio, (0, max(0, n - len(audio))))[:n], clip.audio)


def low_pass(clip: Clip, sample_rate: int) -> np.ndarray:
    from scipy import signal

    sos = signal.butter(8, LOW_PASS_HZ, fs=sample_rate, output="sos")
    return _level(signal.sosfiltfilt(sos, clip.audio), clip.audio)


def ladder(clip: Clip, params: Params) -> dict[str, np.ndarray]:
    """Every rung of the ladder for one clip."""
    mel, rate = params.mel, params.mel.sample_rate
    iterations = params.train_performancenet.griffin_lim_iterations
    rungs = {
        "recording": clip.audio,
        "griffin-lim": _level(griffin_lim_from_mel(log_mel(clip.audio, mel), mel, iterations), clip.audio),
        "low-pass 3 kHz": low_pass(clip, rate),
        "additive sines": additive(clip, rate),
        "fluidsynth violin": fluidsynth(clip, params, 40),
    }
    rungs.update({name: fluidsynth(clip, params, program) for name, program in OTHER_PROGRAMS.items()})
    return rungs


SCORED = ("envelope", "flux", "level", "phase")  # params.yaml's groups
VARIANTS: dict[str, dict] = {  # name: changes to params.yaml's evaluate.realism (the chosen one: no changes)
    "before: env+flat+flux+level, pooled": {"groups": GROUPS[:4], "neighbours": 0, "compress": "none"},
    "all five, pooled": {"groups": GROUPS, "neighbours": 0, "compress": "none"},
    "env+flux+level+phase, pooled": {"neighbours": 0, "compress": "none"},
    "env+flux+level+phase, pooled, log1p": {"neighbours": 0},
    "env+flux+level+phase, 8 nearest": {"compress": "none"},
    "all five, 8 nearest": {"groups": GROUPS, "compress": "none"},
    "flux+level+phase, 8 nearest": {"groups": SCORED[1:], "compress": "none"},
    "all five, 8 nearest, log1p": {"groups": GROUPS},
    "env+flux+level+phase, 8 nearest, log1p (chosen)": {},
    "env+flux+level+phase, 4 nearest, log1p": {"neighbours": 4},
    "env+flux+level+phase, 16 nearest, log1p": {"neighbours": 16},
    "env+flux+level+phase, 8 nearest, log1p, diagonal": {"distance": "diagonal"},
    "env+flux+level+phase, 8 nearest, log1p, dims": {"weighting": "dims"},
}


def ladder_holds(mean: dict[str, float]) -> bool:
    """recording < Griffin-Lim < every degraded rung, on one recording's mean scores."""
    degraded = [v for rung, v in mean.items() if rung not in ("recording", "griffin-lim")]
    return mean["recording"] < mean["griffin-lim"] < min(degraded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6, help="clips per held-out recording")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    rate = params.mel.sample_rate
    reference_clips = [c.audio for name in REFERENCE for c in cut_clips(*read_recording(name, rate), params.mel, None)]
    held_out = {name: cut_clips(*read_recording(name, rate), params.mel, args.clips) for name in HELD_OUT}
    rungs = {name: [ladder(c, params) for c in clips] for name, clips in held_out.items()}
    results: dict = {"reference_clips": len(reference_clips), "variants": {}}
    for variant, changes in VARIANTS.items():
        config = replace(params.evaluate.realism, **changes)
        start = time.perf_counter()
        reference = RealismReference.fit(reference_clips, rate, config)
        fit_s = time.perf_counter() - start
        table, timed, spent = {}, 0, 0.0
        for name, clips in rungs.items():
            scores = {rung: [] for rung in LADDER}
            for clip_rungs in clips:
                for rung, audio in clip_rungs.items():
                    start = time.perf_counter()
                    scores[rung].append(reference.score(audio, rate))
                    spent, timed = spent + time.perf_counter() - start, timed + 1
            table[name] = {rung: float(np.mean(v)) for rung, v in scores.items()}
        results["variants"][variant] = {"fit_s": fit_s, "score_s_per_clip": spent / timed, "mean": table}
        holds = all(ladder_holds(t) for t in table.values())
        print(f"\n{variant}: fit {fit_s:.2f} s on {reference.frames} frames, {1000 * spent / timed:.1f} ms per clip")
        print(pd.DataFrame(table).round(3).to_string(), f"\nladder holds on both: {holds}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
