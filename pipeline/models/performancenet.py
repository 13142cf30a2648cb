"""PerformanceNet (Wang & Yang, AAAI 2019): piano roll -> linear spectrogram, the second baseline.

    piano roll (B, 128, T) --ContourNet: 1-D U-Net along time, pitches as channels-->  (B, F, T)
        onset/offset roll --two conv layers--> concatenated into the first decoder levels
    --TextureNet: multi-band residual blocks (2, 4, 8, 16 bands)--> log1p power spectrogram (B, F, T)

then Griffin-Lim for the phase (:func:`pipeline.spectrogram.griffin_lim`). F = n_fft // 2 + 1 (513 at
the project's 16 kHz / n_fft 1024 / hop 256, so it is scored on the same frames as every system).

* ContourNet encoder: per level two (conv k3 -> InstanceNorm -> leaky ReLU), then max-pool 2;
  ``channels`` per level (the paper: 256, 512, 1024, 2048, 4096 from the 128 pitches). Decoder:
  transposed conv x2, skip concatenation, the same two-conv block; a 1x1 conv to F bins.
* Onset/offset encoder: the roll with +1 at onsets and -1 at offsets, through two conv layers
  whose outputs (pooled to the right length) join the decoder's first two levels.
* TextureNet: each multi-band residual block splits the F bins into k bands and runs each band
  through its own conv -> IN -> leaky ReLU -> conv -> IN (a grouped convolution over the bins
  padded to a multiple of k), then adds the result to its input.

Like the original it has no performer conditioning (one model per instrument). Training loss:
MSE of ``log1p(power)`` over real frames. T need not be a multiple of the pooling factor: inputs
are padded and outputs cut back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.base import Model
from pipeline.models.losses import masked_mse
from pipeline.models.rolls import piano_roll

__all__ = [
    "PerformanceNet",
    "ContourNet",
    "TextureNet",
    "MultiBandResidualBlock",
    "onset_offset_roll",
    "performancenet_loss",
]

PAPER_CHANNELS = (256, 512, 1024, 2048, 4096)


def onset_offset_roll(
    pitch: torch.Tensor,
    onset_frame: torch.Tensor,
    offset_frame: torch.Tensor,
    note_mask: torch.Tensor,
    n_frames: int,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(B, T, 128): +1 on each note's onset frame, -1 on its (exclusive) offset frame, from (B, N) notes.

    An offset at or past the clip end leaves no mark; notes of one pitch that meet sum (+1 - 1 = 0).
    One batched matmul against a one-hot pitch matrix, no loop over notes or frames.
    """
    real = note_mask.to(dtype)[:, :, None]
    # one extra frame catches offsets at the clip end; it is dropped below
    onsets = F.one_hot(onset_frame.long().clamp(0, n_frames), n_frames + 1).to(dtype) * real  # (B, N, T + 1)
    offsets = F.one_hot(offset_frame.long().clamp(0, n_frames), n_frames + 1).to(dtype) * real
    one_hot = F.one_hot(pitch.long().clamp(0, 127), 128).to(dtype)  # (B, N, 128)
    return torch.bmm((onsets - offsets).transpose(1, 2), one_hot)[:, :n_frames]


def _conv_norm_act(
    in_channels: int, out_channels: int, slope: float, groups: int = 1, act: bool = True
) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv1d(in_channels, out_channels, 3, padding=1, groups=groups),
        nn.InstanceNorm1d(out_channels, affine=True),
    ]
    if act:
        layers.append(nn.LeakyReLU(slope))
    return layers


class ConvBlock(nn.Sequential):
    """Two (conv k3 -> InstanceNorm -> leaky ReLU); (B, C_in, T) -> (B, C_out, T)."""

    def __init__(self, in_channels: int, out_channels: int, slope: float = 0.2) -> None:
        super().__init__(
            *_conv_norm_act(in_channels, out_channels, slope), *_conv_norm_act(out_channels, out_channels, slope)
        )


class ContourNet(nn.Module):
    """U-Net along time with the onset/offset encoder: rolls (B, 128, T) -> (B, bins, T), T % 2^(L-1) == 0."""

    def __init__(
        self, bins: int = 513, channels: Sequence[int] = PAPER_CHANNELS, onoff_channels: int = 128, slope: float = 0.2
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 3:
            raise ValueError("ContourNet needs at least 3 levels (the onset/offset features join two decoder levels)")
        self.levels = len(channels)
        self.encoder = nn.ModuleList()
        previous = 128
        for c in channels:
            self.encoder.append(ConvBlock(previous, c, slope))
            previous = c
        # onset/offset encoder: its two layers feed decoder levels 0 and 1 (the deepest two)
        self.onoff_first = nn.Sequential(*_conv_norm_act(128, onoff_channels, slope))
        self.onoff_second = nn.Sequential(*_conv_norm_act(onoff_channels, onoff_channels, slope))
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in range(self.levels - 2, -1, -1):  # from just above the bottleneck up to full resolution
            self.upsample.append(nn.ConvTranspose1d(previous, channels[level], 2, stride=2))
            extra = onoff_channels if level >= self.levels - 3 else 0
            self.decoder.append(ConvBlock(2 * channels[level] + extra, channels[level], slope))
            previous = channels[level]
        self.out = nn.Conv1d(previous, bins, 1)

    def forward(self, piano: torch.Tensor, onoff: torch.Tensor) -> torch.Tensor:
        skips = []
        x = piano
        for i, block in enumerate(self.encoder):
            x = block(x)
            if i < self.levels - 1:
                skips.append(x)
                x = F.max_pool1d(x, 2)
        # onset/offset features at the resolutions of the first two decoder levels
        first = F.max_pool1d(self.onoff_first(onoff), 2 ** (self.levels - 3))
        onoff_features = [F.max_pool1d(self.onoff_second(first), 2), first]
        for j, (up, block) in enumerate(zip(self.upsample, self.decoder)):
            x = torch.cat([up(x), skips.pop()] + ([onoff_features[j]] if j < 2 else []), dim=1)
            x = block(x)
        return self.out(x)


class MultiBandResidualBlock(nn.Module):
    """Split (B, bins, T) into ``bands`` frequency bands, refine each with its own convs, add to the input."""

    def __init__(self, bins: int, bands: int, slope: float = 0.2) -> None:
        super().__init__()
        self.bins, self.bands = bins, bands
        self.padded = -(-bins // bands) * bands  # grouped convs need equal bands
        self.body = nn.Sequential(
            *_conv_norm_act(self.padded, self.padded, slope, groups=bands),
            *_conv_norm_act(self.padded, self.padded, slope, groups=bands, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(F.pad(x, (0, 0, 0, self.padded - self.bins)))
        return x + y[:, : self.bins]


class TextureNet(nn.Sequential):
    def __init__(self, bins: int = 513, bands: Sequence[int] = (2, 4, 8, 16), slope: float = 0.2) -> None:
        super().__init__(*(MultiBandResidualBlock(bins, int(k), slope) for k in bands))


class PerformanceNet(Model):
    """Aligned notes -> ``log1p(|STFT|^2)`` ``(B, bins, T)``."""

    def __init__(
        self,
        bins: int = 513,
        channels: Sequence[int] = PAPER_CHANNELS,
        onoff_channels: int = 128,
        bands: Sequence[int] = (2, 4, 8, 16),
        leaky_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.contour = ContourNet(bins, channels, onoff_channels, leaky_slope)
        self.texture = TextureNet(bins, bands, leaky_slope)
        self.multiple = 2 ** (len(channels) - 1)

    def forward(self, piano: torch.Tensor, onoff: torch.Tensor) -> torch.Tensor:
        """piano, onoff: (B, T, 128) rolls -> (B, bins, T) predicted log1p power."""
        frames = piano.shape[1]
        pad = -frames % self.multiple
        x = F.pad(piano.transpose(1, 2), (0, pad))
        o = F.pad(onoff.transpose(1, 2), (0, pad))
        return self.texture(self.contour(x, o))[..., :frames]

    @staticmethod
    def rolls(batch: dict[str, torch.Tensor], n_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(piano roll, onset/offset roll), each (B, T, 128), of a ``collate_clips`` batch."""
        frames = n_frames or batch["frame_mask"].shape[1]
        piano = piano_roll(batch["pitch"], batch["onset_frame"], batch["offset_frame"], batch["note_mask"], frames)
        onoff = onset_offset_roll(
            batch["pitch"], batch["onset_frame"], batch["offset_frame"], batch["note_mask"], frames
        )
        return piano, onoff


def performancenet_loss(pred: torch.Tensor, target: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """MSE of log1p power over real frames: pred, target (B, bins, T); frame_mask (B, T) bool."""
    return masked_mse(pred, target, frame_mask[:, None, :])
