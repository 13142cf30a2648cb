"""Score-informed source-filter vocoder with an inverse-STFT output: log-mel + the notes' excitation
-> waveform, computed at the mel's frame rate.

HiFi-GAN upsamples 256x through stacks of convolutions and must learn to make a periodic waveform
from scratch; a few thousand CPU steps are not enough (pitch-smeared output). Vocos and iSTFTNet
predict an STFT at frame rate instead and let an inverse STFT make the samples: two orders of
magnitude cheaper. Both still have to invent a phase. Here the phase comes from the score: the
source is the notes' harmonic tones (every partial below Nyquist, flat spectrum,
:mod:`pipeline.models.excitation`) plus a fixed white noise, and the network only predicts two
non-negative spectral filters per frame and frequency bin, from the mel and the source's own
spectrum::

    Y(f, t) = H(f, t) * STFT(harmonic source)(f, t) + N(f, t) * STFT(noise)(f, t)
    audio   = iSTFT(Y)

so partials keep the coherent phase of the score's tones (pitch is exact by construction), breath,
bow and the noise floor come from the filtered noise, and the level and spectral envelope are
predicted directly (the mel loss reaches them without a GAN). Vibrato and intonation that the
score lacks survive only as far as the STFT bins are wide (``sample_rate / n_fft``: 15.6 Hz with the
project's mel recipe).

The frames are those of :class:`pipeline.mel.LogMelSpectrogram` (``n`` samples <-> ``n // hop``
frames, frame ``t`` centred on sample ``t * hop + hop / 2``), so the output is length-exact.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.base import Model
from pipeline.models.convnext import ConvNeXtBlock
from pipeline.models.excitation import SourceMaker
from pipeline.models.mel_filters import slaney_mel_basis


def _unit(spectrum: torch.Tensor) -> torch.Tensor:
    return spectrum / spectrum.abs().clamp(min=1e-8)


def _envelope(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """``(bins, n_mels)``: linear magnitudes of a mel's bands spread evenly over their bins (each bin
    shares itself among the bands whose filters cover it): the filter's starting point."""
    basis = slaney_mel_basis(sample_rate, n_fft, n_mels, fmin, fmax).astype(np.float64)  # (n_mels, bins)
    share = basis / np.maximum(basis.sum(axis=0, keepdims=True), 1e-12)
    return torch.from_numpy((share / np.maximum(basis.sum(axis=1, keepdims=True), 1e-12)).T.astype(np.float32))


class SourceFilterVocoder(SourceMaker, Model):
    """``forward(mel (B, in_channels, T), source (B, 2, T * hop_length))`` -> ``(B, 1, T * hop_length)``.

    ``source`` channel 0 is the harmonic excitation, channel 1 the noise (:meth:`make_source`).
    The mel recipe (``sample_rate``, ``n_fft``, ``hop_length``, ``fmin``, ``fmax``; ``in_channels`` mel
    bands) is the pipeline's ``mel`` params group, passed in by the stage that builds the model.
    """

    excitation = True  # it needs the notes' source (as the source-filter HiFi-GAN does): make_source
    source_kind = "source_filter"
    window: torch.Tensor  # buffers (register_buffer in __init__)
    envelope: torch.Tensor
    pass_band: torch.Tensor

    def __init__(
        self,
        *,
        in_channels: int,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        fmin: float,
        fmax: float,
        channels: int = 256,
        layers: int = 6,
        kernel_size: int = 7,
        excitation_amplitude: float = 0.1,
        noise_amplitude: float = 0.1,
        phase_iterations: int = 0,
    ) -> None:
        """``phase_iterations``: Griffin-Lim-style consistency steps after the filter (0: none), part
        of the model (trained through)."""
        super().__init__()
        if n_fft < hop_length or (n_fft - hop_length) % 2:
            raise ValueError(f"n_fft {n_fft} / hop {hop_length}: n_fft - hop must be even and >= 0")
        self.n_fft, self.hop_length, self.phase_iterations = int(n_fft), int(hop_length), int(phase_iterations)
        self.bins = self.n_fft // 2 + 1
        self.mel_in = nn.Conv1d(in_channels, channels, kernel_size, padding=kernel_size // 2)
        self.source_in = nn.Conv1d(self.bins, channels, 1)
        self.blocks = nn.ModuleList(ConvNeXtBlock(channels, kernel_size) for _ in range(layers))
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, 2 * self.bins)  # per bin: log-magnitude correction, harmonic weight
        nn.init.normal_(self.head.weight, 0.0, 0.01)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.register_buffer("envelope", _envelope(sample_rate, n_fft, in_channels, fmin, fmax), persistent=False)
        dc = torch.ones(self.bins)
        dc[0] = 0.0  # nothing passes 0 Hz: the output cannot drift off zero
        self.register_buffer("pass_band", dc, persistent=False)
        # a partial of amplitude a has |STFT| = a * sum(window) / 2 at its bin: the harmonic source in units of that
        self.harmonic_scale = float(excitation_amplitude) * self.n_fft / 4.0

    # ------------------------------------------------------------------------------ transforms

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, samples)`` -> complex ``(N, bins, samples // hop)``, framed like the mel (zero padding)."""
        pad = (self.n_fft - self.hop_length) // 2
        x = F.pad(x.float(), (pad, pad))
        return torch.stft(x, self.n_fft, self.hop_length, self.n_fft, self.window, center=False, return_complex=True)

    def _istft(self, spec: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_stft`: complex ``(B, bins, T)`` -> ``(B, T * hop)`` by weighted overlap-add."""
        b, _, t = spec.shape
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=1) * self.window[:, None]  # (B, n_fft, T)
        length = (t - 1) * self.hop_length + self.n_fft
        fold = dict(output_size=(1, length), kernel_size=(1, self.n_fft), stride=(1, self.hop_length))
        audio = F.fold(frames, **fold).reshape(b, length)
        norm = F.fold(self.window.square()[None, :, None].expand(1, -1, t), **fold).reshape(1, length)
        pad = (self.n_fft - self.hop_length) // 2
        return (audio / norm.clamp(min=1e-3))[:, pad : pad + t * self.hop_length]

    # ------------------------------------------------------------------------------ model

    def forward(self, mel: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        if source is None:
            raise ValueError("the source-filter vocoder needs the notes' excitation: pass source (make_source)")
        b, _, t = mel.shape
        if source.dim() != 3 or source.shape[1] != 2 or source.shape[-1] != t * self.hop_length:
            raise ValueError(f"source must be (B, 2, {t * self.hop_length}) for {t} frames, got {tuple(source.shape)}")
        spectra = self._stft(source.reshape(2 * b, -1)).reshape(b, 2, self.bins, t)
        harmonic, noise = spectra[:, 0] / self.harmonic_scale, spectra[:, 1]
        magnitude, harmonic_gain = self.filters(mel.float(), harmonic.abs())
        # phase: the score's partials where the network weights them up, the noise's phase elsewhere
        mixed = harmonic_gain * harmonic + noise / noise.abs().clamp(min=1e-8)
        spectrum = magnitude * _unit(mixed)
        for _ in range(self.phase_iterations):
            spectrum = magnitude * _unit(self._stft(self._istft(spectrum)))
        return self._istft(spectrum).unsqueeze(1)

    def filters(self, mel: torch.Tensor, harmonic_magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network: ``(magnitude, harmonic_gain)``, each ``(B, bins, T)``, of the output spectrum, from
        the log-mel ``(B, in_channels, T)`` and the harmonic source's STFT magnitude ``(B, bins, T)`` (in
        units of ``harmonic_scale``). Real-valued, so the onnxruntime export runs it as it is
        (:mod:`pipeline.inference.onnx_export`)."""
        x = self.mel_in(mel) + self.source_in(torch.log(harmonic_magnitude + 1e-3))
        for block in self.blocks:
            x = block(x)
        correction, weight = self.head(self.norm(x.transpose(1, 2))).transpose(1, 2).chunk(2, dim=1)  # (B, bins, T)
        # magnitude: the mel's energy spread evenly over each band's bins, corrected per bin by the network
        envelope = torch.log((self.envelope @ torch.exp(mel)).clamp(min=1e-5))
        magnitude = torch.exp((envelope + correction).clamp(max=12.0)) * self.pass_band[:, None]
        return magnitude, torch.exp(weight.clamp(max=10.0) + 2.0)

    @torch.no_grad()
    def infer(self, mel: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """``(B, 80, T)`` -> ``(B, T * hop)`` (or ``(80, T)`` + ``(2, samples)`` -> ``(samples,)``)."""
        if mel.dim() == 2:
            return self.forward(mel.unsqueeze(0), source.unsqueeze(0))[0, 0]
        return self.forward(mel, source).squeeze(1)

    def remove_weight_norm(self) -> SourceFilterVocoder:
        """No weight norm here (the interface of :class:`pipeline.models.hifigan.Generator`)."""
        return self
