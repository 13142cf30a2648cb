import copy
import io
import itertools
import math

import pytest
import torch
from torch.nn.utils import parametrize

from pipeline.mel import LogMelSpectrogram
from pipeline.models.hifigan import (
    LOSS_WEIGHTS,
    Generator,
    HifiganLossWeights,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    count_parameters,
    discriminator_loss,
    discriminators_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    generator_losses,
    mel_l1_loss,
)
from tests._params import MEL

SR = 16000
SEGMENT = 8192


def vibrato_tone(samples: int, f0: float = 440.0, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A real-ish test clip ``(batch, samples)``: 5 harmonics, 5 Hz vibrato, a short fade-in."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / SR
    clips = []
    for b in range(batch):
        base = f0 * (1 + 0.1 * b) * (1 + 0.01 * torch.sin(2 * math.pi * 5 * t + float(torch.rand(1, generator=g)) * 6))
        phase = 2 * math.pi * torch.cumsum(base, 0) / SR
        tone = sum(0.3 / k * torch.sin(k * phase) for k in range(1, 6))
        clips.append(tone * torch.clamp(t / 0.05, max=1.0))
    return torch.stack(clips).float()


@pytest.fixture(scope="module")
def mel_module():
    return LogMelSpectrogram(MEL)


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return Generator()


@pytest.fixture(scope="module")
def discriminators():
    torch.manual_seed(0)
    return MultiPeriodDiscriminator(), MultiScaleDiscriminator()


# ---------------------------------------------------------------------------------- generator


@pytest.mark.parametrize("frames", [1, 7, 32])
def test_generator_output_is_hop_times_frames(generator, frames):
    out = generator(torch.randn(2, 80, frames))
    assert out.shape == (2, 1, 256 * frames)
    assert generator.hop_length == 256
    assert out.abs().max() <= 1.0


def test_generator_parameter_count_is_v2_sized(generator):
    assert 850_000 <= count_parameters(generator) <= 1_000_000


def test_every_generator_conv_has_weight_norm(generator):
    convs = [m for m in generator.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))]
    assert len(convs) == 1 + 4 + 4 * 3 * 6 + 1
    assert all(parametrize.is_parametrized(m, "weight") for m in convs)


def test_remove_weight_norm_keeps_outputs_and_drops_parametrizations(generator):
    mel = torch.randn(1, 80, 9)
    before = generator.infer(mel)
    plain = copy.deepcopy(generator).remove_weight_norm()
    after = plain.infer(mel)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())
    assert not any("parametrizations" in k for k in plain.state_dict())
    assert count_parameters(plain) < count_parameters(generator)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    assert before.shape == (1, 9 * 256)
    # the original (sharing parametrized classes with its deep copy) still works
    torch.testing.assert_close(generator.infer(mel), before, atol=0, rtol=0)
    assert all(parametrize.is_parametrized(m, "weight") for m in generator.modules() if isinstance(m, torch.nn.Conv1d))
    # the folded generator is a plain module: it can be pickled whole
    buffer = io.BytesIO()
    torch.save(plain, buffer)
    buffer.seek(0)
    torch.testing.assert_close(torch.load(buffer, weights_only=False).infer(mel), after)


def test_infer_is_gradient_free_and_handles_unbatched_input(generator):
    mel = torch.randn(80, 4, requires_grad=True)
    out = generator.infer(mel)
    assert out.shape == (4 * 256,) and not out.requires_grad


def test_hparams_rebuild_the_same_architecture(generator):
    hparams = generator.config()
    rebuilt = Generator(**hparams)
    rebuilt.load_state_dict(generator.state_dict())
    mel = torch.randn(1, 80, 3)
    torch.testing.assert_close(rebuilt.infer(mel), generator.infer(mel))
    assert hparams["upsample_rates"] == (8, 8, 2, 2)  # the defaults, as the signature has them


def test_odd_kernel_minus_stride_is_rejected():
    with pytest.raises(ValueError):
        Generator(upsample_kernel_sizes=(15, 16, 4, 4))


# ---------------------------------------------------------------------------------- discriminators


def test_discriminators_return_logits_and_feature_maps(discriminators):
    mpd, msd = discriminators
    audio = torch.randn(2, 1, SEGMENT) * 0.1
    logits, features = mpd(audio)
    assert len(logits) == 5 and len(features) == 5
    assert all(x.shape[0] == 2 and x.dim() == 2 for x in logits)
    assert [len(f) for f in features] == [6] * 5
    assert [f[0].shape[-1] for f in features] == [2, 3, 5, 7, 11]  # folded by period
    logits, features = msd(audio)
    assert len(logits) == 3 and len(features) == 3
    assert [len(f) for f in features] == [8] * 3
    assert logits[0].shape[1] > logits[1].shape[1] > logits[2].shape[1]  # pooled scales
    # (B, samples) works too
    assert len(mpd(audio[:, 0])[0]) == 5


def test_discriminator_norms(discriminators):
    mpd, msd = discriminators
    assert all(parametrize.is_parametrized(m, "weight") for m in mpd.modules() if isinstance(m, torch.nn.Conv2d))
    raw, *pooled = msd.discriminators
    names = {type(p).__name__ for p in raw.convs[0].parametrizations.weight}
    assert names == {"_SpectralNorm"}
    for d in pooled:
        assert {type(p).__name__ for p in d.convs[0].parametrizations.weight} == {"_WeightNorm"}


def test_discriminator_parameter_counts(discriminators):
    mpd, msd = discriminators
    assert 40e6 < count_parameters(mpd) < 42e6
    assert 29e6 < count_parameters(msd) < 31e6


# ---------------------------------------------------------------------------------- losses


def test_lsgan_losses_on_known_logits():
    ones, zeros = [torch.ones(2, 5), torch.ones(2, 3)], [torch.zeros(2, 5), torch.zeros(2, 3)]
    assert discriminator_loss(ones, zeros).item() == 0.0
    assert discriminator_loss(zeros, ones).item() == pytest.approx(4.0)  # (1 + 1) per sub-discriminator
    assert generator_adversarial_loss(ones).item() == 0.0
    assert generator_adversarial_loss(zeros).item() == pytest.approx(2.0)
    half = [torch.full((2, 5), 0.5)]
    assert discriminator_loss(half, half).item() == pytest.approx(0.5)


def test_feature_matching_loss():
    maps = [[torch.randn(2, 4, 10), torch.randn(2, 8)], [torch.randn(2, 3)]]
    assert feature_matching_loss(maps, maps).item() == 0.0
    shifted = [[m + 0.25 for m in sub] for sub in maps]
    assert feature_matching_loss(maps, shifted).item() == pytest.approx(3 * 0.25)


def test_mel_l1_loss(mel_module):
    audio = vibrato_tone(SEGMENT)
    assert mel_l1_loss(audio, audio.clone(), mel_module).item() == pytest.approx(0.0, abs=1e-6)
    shifted = torch.roll(audio, 1000, dims=-1)
    assert mel_l1_loss(audio, shifted, mel_module).item() > 0.05
    assert mel_l1_loss(audio.unsqueeze(1), shifted.unsqueeze(1), mel_module).item() > 0.05


def test_loss_weights():
    assert (LOSS_WEIGHTS.feature_matching, LOSS_WEIGHTS.mel, LOSS_WEIGHTS.adversarial) == (2.0, 45.0, 1.0)
    assert HifiganLossWeights(mel=10).mel == 10


def test_generator_losses_leave_discriminator_parameters_alone(discriminators, mel_module):
    mpd, msd = discriminators
    real = vibrato_tone(SEGMENT)
    fake = (real * 0.5).requires_grad_(True)
    mpd.zero_grad(set_to_none=True)
    msd.zero_grad(set_to_none=True)
    losses = generator_losses([mpd, msd], real, fake, mel_module)
    losses["total"].backward()
    assert all(p.grad is None and p.requires_grad for p in itertools.chain(mpd.parameters(), msd.parameters()))
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    expected = losses["adversarial"] + 2 * losses["feature_matching"] + 45 * losses["mel"]
    torch.testing.assert_close(losses["total"], expected)


# ---------------------------------------------------------------------------------- training


@pytest.mark.slow
def test_generator_overfits_one_clip_with_mel_l1(mel_module):
    """0.5 s vibrato tone; the generator alone, mel L1. Stops as soon as the (smoothed) loss is
    at most half of the first one; fails if that does not happen within 200 steps."""
    torch.manual_seed(0)
    audio = vibrato_tone(SR // 2)
    audio = audio[:, : audio.shape[1] // 256 * 256]
    mel = mel_module(audio)
    generator = Generator()
    opt = torch.optim.AdamW(generator.parameters(), lr=1e-3, betas=(0.8, 0.99))
    losses = []
    for _ in range(200):
        loss = mel_l1_loss(audio, generator(mel), mel_module)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if len(losses) >= 10 and sum(losses[-5:]) / 5 <= 0.5 * losses[0]:
            break
    assert sum(losses[-5:]) / 5 <= 0.5 * losses[0], losses[::10]
    # it learned the clip, not just its loudness: the output is nearer the target tone than
    # the same tone a fourth lower or a fifth higher
    with torch.no_grad():
        out = generator(mel)
        errors = {
            f0: mel_l1_loss(vibrato_tone(SR // 2, f0=f0)[:, : audio.shape[1]], out, mel_module).item()
            for f0 in (440.0, 330.0, 660.0)
        }
    assert errors[440.0] < min(errors[330.0], errors[660.0]), errors


@pytest.mark.slow
def test_one_full_gan_step_updates_every_parameter(mel_module):
    torch.manual_seed(0)
    generator, mpd, msd = Generator(), MultiPeriodDiscriminator(), MultiScaleDiscriminator()
    opt_g = torch.optim.AdamW(generator.parameters(), lr=2e-4, betas=(0.8, 0.99))
    opt_d = torch.optim.AdamW(itertools.chain(mpd.parameters(), msd.parameters()), lr=2e-4, betas=(0.8, 0.99))
    modules = {"generator": generator, "mpd": mpd, "msd": msd}
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in modules.items()}

    real = vibrato_tone(SEGMENT, batch=2)
    mel = mel_module(real)
    fake = generator(mel)
    assert fake.shape == (2, 1, SEGMENT)

    opt_d.zero_grad()
    loss_d = discriminators_loss([mpd, msd], real, fake)
    loss_d.backward()
    opt_d.step()

    opt_g.zero_grad()
    losses = generator_losses([mpd, msd], real, fake, mel_module)
    losses["total"].backward()
    opt_g.step()

    assert torch.isfinite(loss_d) and loss_d > 0
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    for name, module in modules.items():
        unchanged = [i for i, (old, p) in enumerate(zip(before[name], module.parameters())) if torch.equal(old, p)]
        assert not unchanged, f"{name}: {len(unchanged)} parameter tensors were not updated"
