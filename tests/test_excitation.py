"""The source-filter vocoder: the score-informed excitation and the generator that takes it."""

import numpy as np
import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.inference.runtime.render import vocode
from pipeline.models.excitation import harmonic_excitation, midi_to_hz
from pipeline.models.hifigan import Generator
from tests._params import MEL

SR, HOP = 16000, 256
SMALL = dict(upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1,),))
pytestmark = pytest.mark.usefixtures("one_thread")


def peak_hz(signal: np.ndarray, pad: int = 16) -> float:
    """Frequency of the largest FFT bin (zero-padded: 1/16 of the natural bin width)."""
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal)), n=pad * len(signal)))
    return float(np.argmax(spectrum) * SR / (pad * len(signal)))


def test_a_note_has_its_fundamental_where_it_sounds():
    frames = 125  # 2 s
    source = harmonic_excitation([69], [25], [100], frames, HOP, SR)
    assert source.shape == (frames * HOP,) and source.dtype == np.float32
    assert np.all(source[: 25 * HOP] == 0) and np.all(source[100 * HOP :] == 0)
    assert abs(peak_hz(source[30 * HOP : 95 * HOP]) - 440.0) < 1.0
    # a tuning shift moves the tone (baroque pitch: a semitone down)
    shifted = harmonic_excitation([69], [0], [frames], frames, HOP, SR, tuning_cents=-100)
    assert abs(peak_hz(shifted) - midi_to_hz(68)) < 1.0


def test_a_chord_is_the_sum_of_its_notes():
    pitches, on, off = [60, 64, 67], [0, 0, 0], [60, 60, 60]
    chord = harmonic_excitation(pitches, on, off, 60, HOP, SR)
    parts = sum(harmonic_excitation([p], [0], [60], 60, HOP, SR) for p in pitches)
    np.testing.assert_allclose(chord, parts, atol=1e-6)
    spectrum = np.abs(np.fft.rfft(chord * np.hanning(len(chord)), n=16 * len(chord)))
    for p in pitches:  # every fundamental is a local peak of the chord's spectrum, within 1 Hz
        f = midi_to_hz(p)
        lo, hi = int((f - 5) * 16 * len(chord) / SR), int((f + 5) * 16 * len(chord) / SR)
        assert abs(np.argmax(spectrum[lo:hi]) + lo - f * 16 * len(chord) / SR) * SR / (16 * len(chord)) < 1.0


def test_no_partial_passes_nyquist_and_bad_notes_are_one_line_errors():
    high = harmonic_excitation([120], [0], [40], 40, HOP, SR)  # 8.4 kHz: even the fundamental is above Nyquist
    assert np.abs(high).max() == 0  # so nothing is written (no aliased partial)
    with pytest.raises(PipelineError, match="0-127"):
        harmonic_excitation([130], [0], [4], 4, HOP, SR)
    with pytest.raises(PipelineError, match="pitches"):
        harmonic_excitation([60, 62], [0], [4], 4, HOP, SR)


@pytest.mark.parametrize("frames", [1, 7, 33])
def test_the_source_filter_generator_is_length_exact_and_needs_its_source(frames):
    torch.manual_seed(0)
    g = Generator(excitation=True, **SMALL)
    mel = torch.randn(2, 80, frames)
    source = torch.randn(2, frames * g.hop_length)
    assert g(mel, source).shape == (2, 1, frames * g.hop_length)
    with pytest.raises(ValueError, match="excitation"):
        g(mel)
    with pytest.raises(ValueError, match="samples"):
        g(mel, source[:, :-1])
    assert Generator(**g.config()).excitation  # the flag travels with the hparams


def test_chunked_vocoding_with_a_source_equals_one_pass():
    torch.manual_seed(0)
    g = Generator(excitation=True, **SMALL).eval().remove_weight_norm()
    mel = np.random.default_rng(0).normal(-4, 1, (80, 90)).astype(np.float32)
    source = g.make_source([60, 67], [0, 30], [50, 90], 90, SR)
    whole = g(torch.from_numpy(mel)[None], torch.from_numpy(source)[None])[0, 0].detach().numpy()
    chunked = vocode(g, mel, chunk_frames=20, context=32, source=source)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    with pytest.raises(PipelineError, match="excitation"):
        vocode(g, mel)


@pytest.mark.slow
def test_the_source_filter_generator_overfits_one_batch_and_keeps_the_pitch():
    """A few hundred mel-L1 steps on one 220 Hz segment: the output's fundamental is the note's."""
    from pipeline.mel import LogMelSpectrogram
    from pipeline.models.hifigan import mel_l1_loss

    torch.manual_seed(0)
    frames = 32
    t = np.arange(frames * HOP) / SR
    target = (0.3 * sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 6))).astype(np.float32)
    g = Generator(excitation=True, **SMALL)
    mel_of = LogMelSpectrogram(MEL)
    audio = torch.from_numpy(target)[None]
    mel = mel_of(audio)
    source = torch.from_numpy(g.make_source([57], [0], [frames], frames, SR))[None]
    optimizer = torch.optim.Adam(g.parameters(), lr=2e-3)
    first = None
    for _ in range(150):
        loss = mel_l1_loss(audio, g(mel, source)[:, 0], mel_of)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.6 * first
    out = g(mel, source)[0, 0].detach().numpy()[HOP:-HOP]
    assert abs(peak_hz(out - out.mean()) - 220.0) < 3.0  # (the mel loss cannot see DC: the task adds a DC term)
