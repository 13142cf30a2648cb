"""The realism score (pipeline.evaluation.realism): its ladder on real violin, determinism, bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import RealismConfig
from pipeline.errors import PipelineError
from pipeline.evaluation.realism import RealismReference, frame_features, realism_scores
from tests._params import PARAMS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bach-violin"
CONFIG = PARAMS.evaluate.realism
RATE = PARAMS.mel.sample_rate
CLIP = PARAMS.mel.clip_frames * PARAMS.mel.hop_length


def tone(seed: int, f0: float, vibrato_cents: float = 20.0, noise: float = 0.02) -> np.ndarray:
    """A clip of a bowed-like tone: 10 partials with vibrato and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(CLIP) / RATE
    cents = vibrato_cents * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0 * 2 ** (cents / 1200)) / RATE
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t) ** 2
    audio = sum(np.sin(k * phase) / k for k in range(1, 11) if k * f0 < RATE / 2)
    return (swell * audio + noise * rng.standard_normal(CLIP)).astype(np.float32)


@pytest.fixture(scope="module")
def reference() -> RealismReference:
    return RealismReference.fit([tone(i, 196 * 2 ** (i / 7)) for i in range(8)], RATE, CONFIG)


def test_scores_are_deterministic_and_level_free(reference):
    clip = tone(99, 330.0)
    again = RealismReference.fit([tone(i, 196 * 2 ** (i / 7)) for i in range(8)], RATE, CONFIG)
    assert reference.score(clip, RATE) == again.score(clip, RATE)  # the same float, bit for bit
    assert reference.score(clip, RATE) == pytest.approx(reference.score(0.1 * clip, RATE), rel=1e-6)


def test_a_clip_like_the_reference_scores_better_than_a_pure_or_noisy_one(reference):
    like = reference.score(tone(99, 330.0), RATE)
    assert like < reference.score(tone(99, 330.0, vibrato_cents=0.0, noise=0.0), RATE)  # cleaner is not more real
    assert like < reference.score(tone(99, 330.0, noise=0.5), RATE)


def random_phase(audio: np.ndarray, seed: int) -> np.ndarray:
    """``audio`` with its STFT magnitudes kept and every phase drawn at random: what a phase estimate
    (Griffin-Lim) or a mel vocoder gets wrong, with the spectrum's content unchanged."""
    from scipy import signal

    _, _, spec = signal.stft(audio, nperseg=CONFIG.n_fft, noverlap=CONFIG.n_fft - CONFIG.hop_length)
    phase = np.random.default_rng(seed).uniform(-np.pi, np.pi, spec.shape)
    _, out = signal.istft(
        np.abs(spec) * np.exp(1j * phase), nperseg=CONFIG.n_fft, noverlap=CONFIG.n_fft - CONFIG.hop_length
    )
    return out[: len(audio)].astype(np.float32)


def test_incoherent_phase_scores_worse_with_the_same_magnitudes(reference):
    """The phase group sees what a magnitude-only measure cannot: same spectrogram, random phase."""
    clip = tone(99, 330.0)
    phase_only = replace(CONFIG, groups=("phase",), neighbours=0, compress="none")
    phase_reference = RealismReference.fit([tone(i, 196 * 2 ** (i / 7)) for i in range(8)], RATE, phase_only)
    # measured 0.46 against 0.54 (the bands above the partials hold noise, random in phase either way)
    assert phase_reference.score(clip, RATE) < 0.9 * phase_reference.score(random_phase(clip, 1), RATE)
    assert reference.score(clip, RATE) < 0.5 * reference.score(random_phase(clip, 1), RATE)  # 0.41 against 1.07


def test_neighbours_compare_a_clip_with_the_reference_clips_of_its_register():
    """A low tone against a reference of low and high tones: its 2 nearest reference clips are low ones, so
    it scores closer to them than to the whole pool, and 0 neighbours is the pool."""
    clips = [tone(i, 110.0 + 3 * i) for i in range(3)] + [tone(10 + i, 1200.0 + 40 * i) for i in range(3)]
    near = RealismReference.fit(clips, RATE, replace(CONFIG, neighbours=2))
    pooled = RealismReference.fit(clips, RATE, replace(CONFIG, neighbours=0))
    every = RealismReference.fit(clips, RATE, replace(CONFIG, neighbours=len(clips)))
    low = tone(50, 116.0)
    assert near.score(low, RATE) < pooled.score(low, RATE)
    assert pooled.score(low, RATE) == pytest.approx(every.score(low, RATE), rel=1e-12)


def test_realism_scores_scores_every_clip_of_every_system():
    scores = realism_scores(
        [tone(i, 220.0) for i in range(3)],
        {"a": [tone(7, 250.0), tone(8, 260.0)], "b": [tone(9, 250.0, noise=0.3), tone(9, 250.0)[: CONFIG.n_fft]]},
        sample_rate=RATE,
        config=CONFIG,
    )
    a, b = scores["a"], scores["b"]
    assert len(a) == len(b) == 2 and a[0] is not None and b[0] is not None and a[0] < b[0]
    assert b[1] is None  # too short to score: no score, not an error


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros(0, np.float32), "too short for realism: 0 samples"),
        (np.ones(CONFIG.n_fft, np.float32), f"too short for realism: {CONFIG.n_fft} samples"),
        (np.full(CLIP, np.nan, np.float32), "NaN or infinite"),
        (np.zeros(CLIP, np.float32), "silent"),
        (np.zeros((CLIP, 2), np.float32), "mono audio"),
    ],
)
def test_bad_clips_are_one_line_errors_naming_the_clip(reference, audio, message):
    with pytest.raises(PipelineError, match=message) as err:
        reference.score(audio, RATE, where="system 'x', clip c1")
    assert "system 'x', clip c1" in str(err.value) and "\n" not in str(err.value)


def test_a_click_in_silence_has_too_few_frames_and_a_wrong_rate_is_refused(reference):
    click = np.zeros(CLIP, np.float32)
    click[CLIP // 2] = 1.0
    with pytest.raises(PipelineError, match="frames within"):
        frame_features(click, RATE, CONFIG)
    with pytest.raises(PipelineError, match="the reference was fitted at"):
        reference.score(tone(1, 300.0), RATE // 2)
    with pytest.raises(PipelineError, match="no reference clips"):
        RealismReference.fit([], RATE, CONFIG)
    with pytest.raises(PipelineError, match="none of the 1 reference clips is long enough"):
        RealismReference.fit([click], RATE, CONFIG)
    # a short clip (a recording's last) is left out of a fit, not an error: the same reference without it
    with_short = RealismReference.fit([tone(1, 300.0), tone(2, 200.0)[: CONFIG.n_fft]], RATE, CONFIG)
    assert with_short.frames == RealismReference.fit([tone(1, 300.0)], RATE, CONFIG).frames
    # so is a silent one (a rest: exact zeros)
    with_rest = RealismReference.fit([tone(1, 300.0), np.zeros(CLIP, np.float32)], RATE, CONFIG)
    assert with_rest.frames == with_short.frames


def test_settings_are_checked_as_params_are_read():
    with pytest.raises(PipelineError, match=r"evaluate\.realism\.distance must be one of"):
        replace(CONFIG, distance="cosine")
    with pytest.raises(PipelineError, match="fmin < fmax"):
        RealismConfig(**{**CONFIG.__dict__, "fmin": 9000.0})
    with pytest.raises(PipelineError, match=r"evaluate\.realism\.compress must be one of"):
        replace(CONFIG, compress="sqrt")
    for groups in (("pitch",), (), ("flux", "flux")):
        with pytest.raises(PipelineError, match=r"evaluate\.realism\.groups must be distinct"):
            replace(CONFIG, groups=groups)


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "audio").is_dir(), reason="the Bach Violin development copy is not here")
def test_the_ladder_on_real_violin():
    """Fitted on 4 recordings (2 violinists), on 6 clips of each of 2 other recordings (another movement of
    one violinist, a piece of a third): recording < Griffin-Lim of its mel < every degraded version."""
    from benchmarks.realism_ladder import HELD_OUT, LADDER, REFERENCE, cut_clips, ladder, read_recording

    reference_clips = [c.audio for n in REFERENCE for c in cut_clips(*read_recording(n, RATE), PARAMS.mel, None)]
    reference = RealismReference.fit(reference_clips, RATE, CONFIG)
    for name in HELD_OUT:
        clips = cut_clips(*read_recording(name, RATE), PARAMS.mel, 6)
        rungs = [ladder(c, PARAMS) for c in clips]
        mean = {rung: float(np.mean([reference.score(r[rung], RATE) for r in rungs])) for rung in LADDER}
        degraded = {rung: v for rung, v in mean.items() if rung not in ("recording", "griffin-lim")}
        assert mean["recording"] < mean["griffin-lim"] < min(degraded.values()), (name, mean)
