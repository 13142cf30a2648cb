"""HiFi-GAN V2 vocoder (the Deep Performer inversion model, paper §2.3 / appendix B.3).

Log-mel ``(B, 80, T)`` -> waveform ``(B, 1, T * 256)`` at the project's 16 kHz / hop 256,
plus the two discriminators and the losses used to train it (the mel: docs/data-formats.md):

* :class:`Generator`: conv_pre (k7) -> 4 x [leaky ReLU, transposed-conv upsampling that halves
  the channels, multi-receptive-field fusion of three type-1 residual blocks, averaged] ->
  leaky ReLU -> conv_post (k7, 1 channel) -> tanh. About 0.93 M parameters with V2 defaults.
* :class:`MultiPeriodDiscriminator` (periods 2, 3, 5, 7, 11; ~41 M parameters) and
  :class:`MultiScaleDiscriminator` (raw, /2, /4; ~30 M parameters).
* Least-squares GAN losses, feature matching and mel L1. Every loss function here returns the
  *unweighted* term; the caller applies :class:`HifiganLossWeights` (feature matching x2,
  mel x45), as :func:`generator_losses` does.

Every convolution carries weight norm (spectral norm on the raw-scale discriminator), using
``torch.nn.utils.parametrizations``; :meth:`Generator.remove_weight_norm` folds it away for
inference. The mel used by the loss is always :class:`pipeline.mel.LogMelSpectrogram`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from pipeline.models.base import Model
from pipeline.models.excitation import SourceMaker

FeatureMaps = list[torch.Tensor]

__all__ = [
    "ResBlock",
    "MultiReceptiveField",
    "Generator",
    "PeriodDiscriminator",
    "ScaleDiscriminator",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "HifiganLossWeights",
    "LOSS_WEIGHTS",
    "discriminator_loss",
    "generator_adversarial_loss",
    "feature_matching_loss",
    "mel_l1_loss",
    "dc_offset_loss",
    "discriminators_loss",
    "generator_losses",
    "count_parameters",
]


def _same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the length of a stride-1 convolution (odd kernels)."""
    return dilation * (kernel_size - 1) // 2


def _as_audio(audio: torch.Tensor) -> torch.Tensor:
    """``(B, samples)`` or ``(B, 1, samples)`` -> ``(B, 1, samples)``."""
    if audio.dim() == 2:
        return audio.unsqueeze(1)
    if audio.dim() != 3 or audio.shape[1] != 1:
        raise ValueError(f"expected audio of shape (B, samples) or (B, 1, samples), got {tuple(audio.shape)}")
    return audio


def _is_weight_norm_hook(hook: object) -> bool:
    function = getattr(hook, "hook", hook)  # torch wraps module hooks in a _WrappedHook
    return getattr(function, "__name__", "") == "_weight_norm_compat_hook"


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars (weight-norm ``g`` and ``v`` both count, as in the reference)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """HiFi-GAN residual block type 1: for each dilation ``d``,
    ``x = x + conv_1(lrelu(conv_d(lrelu(x))))``. Shape-preserving ``(B, C, N) -> (B, C, N)``."""

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        dilations: Sequence[int] = (1, 3, 5),
        leaky_slope: float = 0.1,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError("ResBlock kernel_size must be odd to preserve the length")
        self.leaky_slope = leaky_slope
        self.dilated = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d))
            for d in dilations
        )
        self.plain = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size)) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.dilated, self.plain):
            # one expression: the dilated conv's output is freed as soon as the plain conv has read it
            # (a named intermediate kept it alive and made inference 8 % slower than the reference)
            x = x + plain(F.leaky_relu(dilated(F.leaky_relu(x, self.leaky_slope)), self.leaky_slope))
        return x


class MultiReceptiveField(nn.Module):
    """Multi-receptive-field fusion: the *average* of parallel :class:`ResBlock` outputs.
    ``(B, C, N) -> (B, C, N)``."""

    def __init__(
        self,
        channels: int,
        kernel_sizes: Sequence[int] = (3, 7, 11),
        dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        leaky_slope: float = 0.1,
    ) -> None:
        super().__init__()
        if len(kernel_sizes) != len(dilation_sizes):
            raise ValueError("one dilation tuple per resblock kernel size is required")
        self.blocks = nn.ModuleList(ResBlock(channels, k, d, leaky_slope) for k, d in zip(kernel_sizes, dilation_sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.blocks[0](x)
        for block in self.blocks[1:]:
            total = total + block(x)
        return total / len(self.blocks)


class Generator(SourceMaker, Model):
    """HiFi-GAN V2 generator: log-mel ``(B, in_channels, T)`` -> waveform ``(B, 1, T * hop_length)``
    in ``[-1, 1]``, where ``hop_length = prod(upsample_rates)`` (256 with the defaults).

    Each transposed convolution uses ``padding = (kernel - stride) // 2``; ``kernel - stride``
    must be even so that every stage multiplies the length exactly by its stride.

    Model files hold its weights with weight norm (pipeline.models.persistence); to vocode, load one
    and call :meth:`remove_weight_norm`. With ``excitation``, :meth:`make_source` makes its source.
    """

    source_kind = "hifigan"

    def __init__(
        self,
        in_channels: int = 80,
        upsample_initial_channel: int = 128,
        upsample_rates: Sequence[int] = (8, 8, 2, 2),
        upsample_kernel_sizes: Sequence[int] = (16, 16, 4, 4),
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        leaky_slope: float = 0.1,
        excitation: bool = False,
        excitation_harmonics: int = 8,
        excitation_amplitude: float = 0.1,
    ) -> None:
        """``excitation``: the neural source-filter variant: ``forward(mel, source)`` also takes a
        waveform-rate excitation (pipeline.models.excitation), downsampled by a strided convolution
        to every upsampling stage's rate and added there (as NSF-HiFiGAN injects its source)."""
        super().__init__()
        upsample_rates = tuple(int(r) for r in upsample_rates)
        upsample_kernel_sizes = tuple(int(k) for k in upsample_kernel_sizes)
        resblock_kernel_sizes = tuple(int(k) for k in resblock_kernel_sizes)
        resblock_dilation_sizes = tuple(tuple(int(d) for d in ds) for ds in resblock_dilation_sizes)
        if len(upsample_rates) != len(upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have the same length")
        for k, s in zip(upsample_kernel_sizes, upsample_rates):
            if k < s or (k - s) % 2:
                raise ValueError(f"upsample kernel {k} / stride {s}: kernel - stride must be even and >= 0")
        if upsample_initial_channel % 2 ** len(upsample_rates):
            raise ValueError("upsample_initial_channel must be divisible by 2 ** len(upsample_rates)")
        self.excitation = bool(excitation)
        self.leaky_slope = leaky_slope
        self.hop_length = math.prod(upsample_rates)

        self.conv_pre = nn.Conv1d(in_channels, upsample_initial_channel, 7, padding=3)
        self.upsamples = nn.ModuleList()
        self.fusions = nn.ModuleList()
        channels = upsample_initial_channel
        for rate, kernel in zip(upsample_rates, upsample_kernel_sizes):
            self.upsamples.append(
                nn.ConvTranspose1d(channels, channels // 2, kernel, stride=rate, padding=(kernel - rate) // 2)
            )
            channels //= 2
            self.fusions.append(
                MultiReceptiveField(channels, resblock_kernel_sizes, resblock_dilation_sizes, leaky_slope)
            )
        self.conv_post = nn.Conv1d(channels, 1, 7, padding=3)
        self.source_convs = nn.ModuleList()
        if self.excitation:
            channels, rate_so_far = upsample_initial_channel, 1
            for rate in upsample_rates:
                channels //= 2
                rate_so_far *= rate
                down = self.hop_length // rate_so_far  # from the waveform rate to this stage's rate
                self.source_convs.append(
                    nn.Conv1d(1, channels, 2 * down, stride=down, padding=down // 2)
                    if down > 1
                    else nn.Conv1d(1, channels, 1)
                )

        # Small N(0, 0.01) init of the upsampling and residual convolutions (as in HiFi-GAN),
        # applied before weight norm so that g = ||v|| starts from it.
        for module in [*self.upsamples, *self.fusions.modules()]:
            if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                nn.init.normal_(module.weight, 0.0, 0.01)
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                weight_norm(module)

    def forward(self, mel: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, in_channels, T)`` [and, with ``excitation``, ``source`` ``(B, T * hop_length)`` or
        ``(B, 1, T * hop_length)``] -> ``(B, 1, T * hop_length)``."""
        if self.excitation:
            if source is None:
                raise ValueError("this vocoder was built with excitation=True: pass the source excitation")
            source = _as_audio(source)
            if source.shape[-1] != mel.shape[-1] * self.hop_length:
                raise ValueError(f"source has {source.shape[-1]} samples, expected {mel.shape[-1] * self.hop_length}")
        x = self.conv_pre(mel)
        for i, (upsample, fusion) in enumerate(zip(self.upsamples, self.fusions)):
            x = upsample(F.leaky_relu(x, self.leaky_slope))
            if self.excitation and source is not None:  # (never None with excitation: checked above)
                x = x + self.source_convs[i](source.to(x.dtype))
            x = fusion(x)
        x = self.conv_post(F.leaky_relu(x, self.leaky_slope))
        return torch.tanh(x)

    @torch.no_grad()
    def infer(self, mel: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """Vocoder convenience: ``(B, 80, T)`` -> ``(B, T * hop_length)`` (or ``(80, T)`` ->
        ``(T * hop_length,)``) in ``[-1, 1]``, without gradients."""
        if mel.dim() == 2:
            return self.forward(mel.unsqueeze(0), None if source is None else source.reshape(1, -1))[0, 0]
        return self.forward(mel, source).squeeze(1)

    def remove_weight_norm(self) -> Generator:
        """Fold every weight-norm parametrization into a plain ``weight`` parameter (for inference);
        in place, returns ``self``.

        ``torch.nn.utils.parametrize.remove_parametrizations`` deletes the property from the
        module's dynamically created class, which ``copy.deepcopy`` shares between copies, so
        removing it from a copy would break the original. Here each module is instead switched
        back to its plain class, leaving the shared parametrized class untouched.
        """
        module: Any  # parametrized modules: their attributes are made at run time
        for module in list(self.modules()):
            if not parametrize.is_parametrized(module, "weight"):
                continue
            if set(module.parametrizations.keys()) != {"weight"}:
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
                continue
            requires_grad = module.parametrizations.weight.original0.requires_grad
            with torch.no_grad():
                weight = module.weight.detach().clone()
            del module._modules["parametrizations"]
            module.__class__ = module.__class__.__bases__[0]
            module.weight = nn.Parameter(weight, requires_grad=requires_grad)
            # weight_norm's hook that converts old weight_g/weight_v checkpoints: no longer
            # meaningful, and a local function that would make the module unpicklable.
            hooks = module._load_state_dict_pre_hooks
            for key in [k for k, h in hooks.items() if _is_weight_norm_hook(h)]:
                del hooks[key]
        return self


# --------------------------------------------------------------------------------------------
# Discriminators
# --------------------------------------------------------------------------------------------


def _conv_stack(
    convs: nn.ModuleList, conv_post: nn.Module, x: torch.Tensor, slope: float
) -> tuple[torch.Tensor, FeatureMaps]:
    """Shared body of both sub-discriminators: conv + leaky ReLU layers, then ``conv_post``.

    Returns the flattened logits ``(B, L)`` and every layer's output (the feature maps)."""
    features: FeatureMaps = []
    for conv in convs:
        x = F.leaky_relu(conv(x), slope)
        features.append(x)
    x = conv_post(x)
    features.append(x)
    return x.flatten(1), features


class PeriodDiscriminator(nn.Module):
    """One sub-discriminator of the MPD: reflect-pads ``(B, 1, N)`` to a multiple of ``period``,
    folds it to ``(B, 1, ceil(N / period), period)`` and applies 2-D convolutions with
    ``(kernel_size, 1)`` kernels, so each column sees samples ``period`` apart.

    Returns ``(logits (B, L), feature_maps)``: one map per convolution including the last.
    """

    def __init__(
        self,
        period: int,
        channels: Sequence[int] = (32, 128, 512, 1024, 1024),
        kernel_size: int = 5,
        stride: int = 3,
        leaky_slope: float = 0.1,
    ) -> None:
        super().__init__()
        self.period = period
        self.leaky_slope = leaky_slope
        pad = (_same_padding(kernel_size), 0)
        layers = []
        in_ch = 1
        for i, out_ch in enumerate(channels):
            s = 1 if i == len(channels) - 1 else stride
            layers.append(weight_norm(nn.Conv2d(in_ch, out_ch, (kernel_size, 1), (s, 1), padding=pad)))
            in_ch = out_ch
        self.convs = nn.ModuleList(layers)
        self.conv_post = weight_norm(nn.Conv2d(in_ch, 1, (3, 1), padding=(1, 0)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, FeatureMaps]:
        x = _as_audio(audio)
        b, c, n = x.shape
        remainder = n % self.period
        if remainder:
            x = F.pad(x, (0, self.period - remainder), mode="reflect")
        x = x.view(b, c, -1, self.period)
        return _conv_stack(self.convs, self.conv_post, x, self.leaky_slope)


class ScaleDiscriminator(nn.Module):
    """One sub-discriminator of the MSD: strided, grouped 1-D convolutions over ``(B, 1, N)``.
    ``norm`` is ``"weight"`` or ``"spectral"`` (the raw-audio scale uses spectral norm).

    Returns ``(logits (B, L), feature_maps)``: one map per convolution including the last.
    """

    # (in, out, kernel, stride, groups, padding): the reference HiFi-GAN/MelGAN stack.
    LAYERS = (
        (1, 128, 15, 1, 1, 7),
        (128, 128, 41, 2, 4, 20),
        (128, 256, 41, 2, 16, 20),
        (256, 512, 41, 4, 16, 20),
        (512, 1024, 41, 4, 16, 20),
        (1024, 1024, 41, 1, 16, 20),
        (1024, 1024, 5, 1, 1, 2),
    )

    def __init__(self, norm: str = "weight", leaky_slope: float = 0.1) -> None:
        super().__init__()
        if norm not in ("weight", "spectral"):
            raise ValueError(f"norm must be 'weight' or 'spectral', got {norm!r}")
        wrap = spectral_norm if norm == "spectral" else weight_norm
        self.leaky_slope = leaky_slope
        self.convs = nn.ModuleList(
            wrap(nn.Conv1d(i, o, k, stride=s, groups=g, padding=p)) for i, o, k, s, g, p in self.LAYERS
        )
        self.conv_post = wrap(nn.Conv1d(self.LAYERS[-1][1], 1, 3, padding=1))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, FeatureMaps]:
        return _conv_stack(self.convs, self.conv_post, _as_audio(audio), self.leaky_slope)


class MultiPeriodDiscriminator(nn.Module):
    """MPD: audio ``(B, 1, N)`` or ``(B, N)`` -> ``(logits, feature_maps)``, one entry per period;
    ``logits[i]`` is ``(B, L_i)`` and ``feature_maps[i]`` a list of 6 tensors."""

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), leaky_slope: float = 0.1) -> None:
        super().__init__()
        self.periods = tuple(int(p) for p in periods)
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, leaky_slope=leaky_slope) for p in self.periods)

    def forward(self, audio: torch.Tensor) -> tuple[list[torch.Tensor], list[FeatureMaps]]:
        outputs = [d(audio) for d in self.discriminators]
        return [o[0] for o in outputs], [o[1] for o in outputs]


class MultiScaleDiscriminator(nn.Module):
    """MSD: audio ``(B, 1, N)`` or ``(B, N)`` -> ``(logits, feature_maps)``, one entry per scale
    (raw, then average-pooled with kernel 4 / stride 2 / padding 2 before each further scale);
    ``feature_maps[i]`` is a list of 8 tensors."""

    def __init__(self, scales: int = 3, leaky_slope: float = 0.1) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator("spectral" if i == 0 else "weight", leaky_slope) for i in range(scales)
        )
        self.pool = nn.AvgPool1d(4, stride=2, padding=2)

    def forward(self, audio: torch.Tensor) -> tuple[list[torch.Tensor], list[FeatureMaps]]:
        x = _as_audio(audio)
        logits, features = [], []
        for i, d in enumerate(self.discriminators):
            if i:
                x = self.pool(x)
            score, fmaps = d(x)
            logits.append(score)
            features.append(fmaps)
        return logits, features


# --------------------------------------------------------------------------------------------
# Losses (all unweighted; see HifiganLossWeights)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HifiganLossWeights:
    """Generator loss = adversarial * L_adv + feature_matching * L_fm + mel * L_mel (HiFi-GAN)."""

    adversarial: float = 1.0
    feature_matching: float = 2.0
    mel: float = 45.0


LOSS_WEIGHTS = HifiganLossWeights()


def discriminator_loss(real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """LSGAN discriminator loss, summed over sub-discriminators:
    ``sum_k mean((1 - D_k(real))^2) + mean(D_k(fake)^2)``. Zero when D(real)=1 and D(fake)=0."""
    total = real_logits[0].new_zeros(())
    for real, fake in zip(real_logits, fake_logits, strict=True):
        total = total + torch.mean((1.0 - real) ** 2) + torch.mean(fake**2)
    return total


def generator_adversarial_loss(fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """LSGAN generator loss, summed over sub-discriminators: ``sum_k mean((1 - D_k(fake))^2)``."""
    total = fake_logits[0].new_zeros(())
    for fake in fake_logits:
        total = total + torch.mean((1.0 - fake) ** 2)
    return total


def feature_matching_loss(real_features: Sequence[FeatureMaps], fake_features: Sequence[FeatureMaps]) -> torch.Tensor:
    """Feature-matching loss: ``sum_k sum_l mean|F_kl(real) - F_kl(fake)|`` over every feature
    map of every sub-discriminator. Unweighted: the caller multiplies by
    ``HifiganLossWeights.feature_matching`` (2). Real maps are treated as constants (detached)."""
    total = fake_features[0][0].new_zeros(())
    for real_maps, fake_maps in zip(real_features, fake_features, strict=True):
        for real, fake in zip(real_maps, fake_maps, strict=True):
            total = total + torch.mean(torch.abs(real.detach() - fake))
    return total


def mel_l1_loss(real_audio: torch.Tensor, fake_audio: torch.Tensor, mel_module: nn.Module) -> torch.Tensor:
    """Mean absolute difference of the log-mels of ``real_audio`` and ``fake_audio``
    (``(B, samples)`` or ``(B, 1, samples)``), computed with ``mel_module`` (a
    :class:`pipeline.mel.LogMelSpectrogram`). Unweighted: the caller multiplies by
    ``HifiganLossWeights.mel`` (45)."""
    real = _as_audio(real_audio).squeeze(1)
    fake = _as_audio(fake_audio).squeeze(1)
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} audio differ in shape")
    with torch.no_grad():
        real_mel = mel_module(real)
    return F.l1_loss(mel_module(fake), real_mel)


@contextlib.contextmanager
def _no_parameter_grads(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Temporarily stop gradients into the parameters of ``modules`` (activations still
    propagate gradients), restoring each parameter's previous flag afterwards."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def discriminators_loss(
    discriminators: Sequence[nn.Module], real_audio: torch.Tensor, fake_audio: torch.Tensor
) -> torch.Tensor:
    """Discriminator-step loss: :func:`discriminator_loss` summed over ``discriminators``
    (e.g. ``[mpd, msd]``). ``fake_audio`` is detached, so only the discriminators get gradients.
    Real and fake go through each discriminator as one batch of ``2B``."""
    real = _as_audio(real_audio)
    fake = _as_audio(fake_audio).detach()
    both = torch.cat([real, fake], dim=0)
    b = real.shape[0]
    total = real.new_zeros(())
    for d in discriminators:
        logits, _ = d(both)
        total = total + discriminator_loss([x[:b] for x in logits], [x[b:] for x in logits])
    return total


def dc_offset_loss(real_audio: torch.Tensor, fake_audio: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the two signals' means (their DC). The mel loss cannot see DC
    (the lowest Slaney band has zero weight at 0 Hz), so without this a vocoder drifts to an offset."""
    return (_as_audio(fake_audio).mean(dim=-1) - _as_audio(real_audio).mean(dim=-1)).abs().mean()


def generator_losses(
    discriminators: Sequence[nn.Module],
    real_audio: torch.Tensor,
    fake_audio: torch.Tensor,
    mel_module: nn.Module,
    weights: HifiganLossWeights = LOSS_WEIGHTS,
) -> dict[str, torch.Tensor]:
    """Generator-step losses. Returns the unweighted ``adversarial``, ``feature_matching`` and
    ``mel`` terms and the weighted ``total`` (backpropagate ``total``). The discriminators'
    parameters receive no gradient (they are frozen for the call), and real features are
    computed without a graph."""
    real = _as_audio(real_audio)
    fake = _as_audio(fake_audio)
    adversarial = real.new_zeros(())
    matching = real.new_zeros(())
    with _no_parameter_grads(discriminators):
        for d in discriminators:
            with torch.no_grad():
                _, real_features = d(real)
            fake_logits, fake_features = d(fake)
            adversarial = adversarial + generator_adversarial_loss(fake_logits)
            matching = matching + feature_matching_loss(real_features, fake_features)
    mel = mel_l1_loss(real, fake, mel_module)
    total = weights.adversarial * adversarial + weights.feature_matching * matching + weights.mel * mel
    return {"adversarial": adversarial, "feature_matching": matching, "mel": mel, "total": total}
