"""The synthesis model's harmonic prior: each pitch's partials in the right mel bands, chords summed,
silence empty, and a model that uses it (pipeline.models.harmonic_prior)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.models.harmonic_prior import HarmonicPrior, harmonic_templates
from pipeline.models.mel_filters import hz_to_mel
from pipeline.models.persistence import load_model, save_model
from pipeline.models.synthesis import SynthesisModel

RECIPE = dict(sample_rate=16000, n_fft=1024, fmin=0.0, fmax=8000.0)
SMALL = dict(d_model=32, encoder_layers=1, decoder_layers=2, heads=2, attention_dim=32, ffn_dim=64, dropout=0.0)

pytestmark = pytest.mark.usefixtures("one_thread")


def band_of(hz: float, n_mels: int = 80) -> int:
    """The mel band whose centre is nearest ``hz`` (Slaney scale, 0-8 kHz)."""
    centres = np.linspace(hz_to_mel(0.0), hz_to_mel(8000.0), n_mels + 2)[1:-1]
    return int(np.argmin(np.abs(centres - hz_to_mel(hz))))


def midi_hz(pitch: int) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def test_each_pitch_lights_the_bands_of_its_partials_and_not_the_gaps():
    table = harmonic_templates(n_mels=80, **RECIPE)
    below = [p for p in range(128) if midi_hz(p) < 8000.0]  # a pitch above fmax has no partial in the mel
    assert table.shape == (128, 80) and np.allclose(table[below].max(axis=1), 1.0)
    assert not table[len(below) :].any()
    for pitch in (43, 55, 62, 69):  # G2 .. A4: partials below 1 kHz are one to several bands apart
        f0 = midi_hz(pitch)
        for k in (1, 2, 3):
            assert table[pitch, band_of(k * f0)] > 0.3, (pitch, k)
        # half way between the first two partials: nothing there
        assert table[pitch, band_of(1.5 * f0)] < 0.2 * table[pitch, band_of(f0)], pitch
        assert table[pitch, : max(1, band_of(0.5 * f0))].max() < 0.05, pitch  # below the fundamental: (nearly) empty
    # a pitch's lowest lit band moves up with the pitch
    lowest = [int(np.argmax(table[p] > 0.3)) for p in range(40, 90)]
    assert lowest == sorted(lowest) and lowest[-1] > lowest[0] + 15


def notes(pitches, onsets, offsets):
    t = lambda v: torch.tensor([v])  # noqa: E731
    return t(pitches), t(onsets), t(offsets), torch.ones(1, len(pitches), dtype=torch.bool)


def test_the_prior_sums_a_chord_and_is_empty_where_nothing_sounds():
    prior = HarmonicPrior(n_mels=80, **RECIPE)
    table = prior.templates
    pitch, onset, offset, mask = notes([60, 67], [2, 4], [8, 10])
    out = prior(pitch, onset, offset, mask, 12)[0]  # (T, n_mels)
    assert out.shape == (12, 80) and out.min() >= 0 and out.max() <= 1
    assert torch.count_nonzero(out[:2]) == 0 and torch.count_nonzero(out[10:]) == 0  # silence: empty
    c4, g4 = band_of(midi_hz(60)), band_of(midi_hz(67))
    assert out[3, c4] > 0.9 and out[3, g4] < 0.3  # only C4 sounds in frame 3
    assert out[9, g4] > 0.9 and out[9, c4] < 0.3  # only G4 in frame 9
    assert out[5, c4] > 0.9 and out[5, g4] > 0.9  # both in frame 5: the chord's sum
    chord = torch.log((table[60] + table[67]).clamp(min=1e-3)) / -np.log(1e-3) + 1
    assert torch.allclose(out[5], chord.clamp(max=1.0), atol=1e-6)


def test_a_model_with_the_prior_needs_the_mel_recipe_and_round_trips(tmp_path):
    with pytest.raises(ValueError, match="harmonic_prior needs the mel recipe: pass sample_rate, n_fft, fmin, fmax"):
        SynthesisModel(harmonic_prior=True, **SMALL)
    model = SynthesisModel(n_performers=3, harmonic_prior=True, **RECIPE, **SMALL)
    save_model(tmp_path / "model.pt", model)
    clone = load_model(tmp_path / "model.pt", SynthesisModel)
    assert clone.config() == model.config() and clone.prior is not None
    assert torch.equal(clone.prior.templates, model.prior.templates)
    for a, b in zip(clone.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


def test_the_prior_moves_the_output_with_the_pitch_where_the_embedding_cannot():
    """An unseen pitch's embedding row is random; the prior still puts its partials' bands up: with
    every learned weight of the output path zeroed except the prior's gain, the log-mel is the prior."""
    torch.manual_seed(0)
    model = SynthesisModel(n_performers=2, harmonic_prior=True, **RECIPE, **SMALL).eval()
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.zero_()
        model.prior_gain.weight.zero_()
        model.prior_gain.bias.fill_(5.0)
    pitch, onset, offset, mask = notes([57], [0], [10])
    kwargs = dict(
        onset=torch.zeros(1, 1, dtype=torch.long),
        duration=torch.full((1, 1), 24),
        onset_frame=onset,
        offset_frame=offset,
        note_mask=mask,
        performer=torch.tensor([0]),
        frame_mask=torch.ones(1, 10, dtype=torch.bool),
    )
    with torch.no_grad():
        low = model(pitch=pitch, **kwargs)[0, :, 5]
        high = model(pitch=pitch + 12, **kwargs)[0, :, 5]
    gain = float(torch.nn.functional.softplus(torch.tensor(5.0)))
    expected = (torch.log(model.prior.templates[57].clamp(min=1e-3)) / -np.log(1e-3) + 1).clamp(max=1.0)
    assert torch.allclose(low, gain * expected, atol=1e-5)
    assert low[band_of(midi_hz(57))] > 0.9 * gain
    assert high[band_of(midi_hz(57))] < 0.2 * gain and high[band_of(midi_hz(69))] > 0.9 * gain


def test_the_prior_model_overfits_one_batch():
    torch.manual_seed(0)
    model = SynthesisModel(n_performers=2, harmonic_prior=True, **RECIPE, **SMALL)
    gen = torch.Generator().manual_seed(1)
    pitch = torch.randint(50, 80, (2, 6), generator=gen)
    onset_frame = torch.sort(torch.randint(0, 30, (2, 6), generator=gen), dim=1).values
    kwargs = dict(
        pitch=pitch,
        onset=onset_frame * 2,
        duration=torch.full((2, 6), 12),
        onset_frame=onset_frame,
        offset_frame=onset_frame + 8,
        note_mask=torch.ones(2, 6, dtype=torch.bool),
        performer=torch.tensor([0, 1]),
        frame_mask=torch.ones(2, 40, dtype=torch.bool),
    )
    target = 3.0 * model.prior(pitch, onset_frame, onset_frame + 8, kwargs["note_mask"], 40).transpose(1, 2) - 5.0
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss = model.loss(model(**kwargs), target, kwargs["frame_mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])
