"""Harmonic prior of the synthesis model: where in the mel the sounding notes' partials fall.

The synthesis model learns pitch from a 128-entry embedding table. On the built-in corpus (seven
training pieces) it learned the training pieces by heart and did not learn the map from a pitch to
the mel bands its partials light up: on unseen pieces its mel put energy in the wrong bands, and the
vocoder, which follows the mel, played the wrong pitch (Deep Performer's transcribed raw pitch
accuracy 0.54 on unseen pieces, 0.94 on training pieces; docs/benchmarks.md, "Synthesis model's
harmonic prior"). That map is not something to learn from data: it is physics. This module computes
it, once, for every MIDI pitch:

    template[p] = mel filterbank @ |spectrum of a flat harmonic tone at pitch p|**2, scaled to max 1

and :class:`HarmonicPrior` turns the notes sounding in each frame into a ``(B, T, n_mels)`` map in
``[0, 1]`` (1 in the bands of a partial, 0 in bands no partial reaches), the log of the templates
summed over the sounding notes (so chords work, as in the polyphonic mixer). The model adds a linear
projection of it to the decoder's input and a non-negative, frame- and band-wise gain of it to its
output log-mel: the network decides how strongly each band follows the partials (a bowed tone's
partials stand out, a bow noise does not), the prior says where they are, for any pitch, seen in
training or not.

Each partial is a Gaussian bump of one STFT bin's width (``sample_rate / n_fft``), roughly the main
lobe of the mel's Hann window, so the template is what the mel of a steady flat tone looks like.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.models.mel_filters import slaney_mel_basis
from pipeline.models.rolls import piano_roll

REACH = 6  # bins either side of a partial where its bump is evaluated
FLOOR = 1e-3  # template energy below which a band counts as empty: the log map spans log(FLOOR) .. 0


def harmonic_templates(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``(128, n_mels)`` float32: the mel energies of a flat harmonic tone at each MIDI pitch (A4 =
    440 Hz; every partial below ``fmax``), each row scaled to a maximum of 1."""
    basis = slaney_mel_basis(sample_rate, n_fft, n_mels, fmin, fmax).astype(np.float64)  # (n_mels, bins)
    n_bins = n_fft // 2 + 1
    width = sample_rate / n_fft  # one STFT bin, in Hz: the bump's standard deviation
    # each bump evaluated on the bins within REACH widths of its centre only (exp(-REACH**2 / 2) ~ 1e-8
    # beyond): 128 pitches x all partials x all bins took 0.13 s of every model build
    reach = np.arange(-REACH, REACH + 1)
    rows = np.zeros((128, n_mels))
    for pitch in range(128):
        f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        centre = f0 * np.arange(1, int(fmax // f0) + 1) / width  # the partials, in bins
        if not len(centre):
            continue
        bins = np.rint(centre).astype(np.int64)[:, None] + reach  # (partials, 2 * REACH + 1)
        inside = (bins >= 0) & (bins < n_bins)
        bump = np.exp(-0.5 * (bins - centre[:, None]) ** 2)
        power = np.bincount(bins[inside], weights=bump[inside], minlength=n_bins)
        energy = basis @ power
        rows[pitch] = energy / max(energy.max(), 1e-12)
    return rows.astype(np.float32)


class HarmonicPrior(nn.Module):
    """Aligned notes -> ``(B, T, n_mels)`` in ``[0, 1]``: 1 in a band a sounding note's partial fills,
    0 where none reaches (and in frames where nothing sounds)."""

    templates: torch.Tensor

    def __init__(self, *, sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> None:
        super().__init__()
        table = harmonic_templates(sample_rate, n_fft, n_mels, fmin, fmax)
        self.register_buffer("templates", torch.from_numpy(table), persistent=False)

    def forward(
        self,
        pitch: torch.Tensor,
        onset_frame: torch.Tensor,
        offset_frame: torch.Tensor,
        note_mask: torch.Tensor,
        n_frames: int,
    ) -> torch.Tensor:
        """(B, N) notes in frames (offset exclusive) -> (B, T, n_mels)."""
        piano = piano_roll(pitch, onset_frame, offset_frame, note_mask, n_frames)
        energy = piano @ self.templates  # (B, T, n_mels): the chord's partials, summed
        return (torch.log(energy.clamp(min=FLOOR)) / -np.log(FLOOR) + 1.0).clamp(max=1.0)
