"""Synthesis model: aligned notes -> log-mel spectrogram (FastSpeech-like encoder/decoder).

    notes --NoteEmbedding + note-index positions--> encoder (3 FFT blocks)      (B, N, D)
          --PolyphonicMixer (sum of sounding notes per frame)-->                (B, T, D)
          --NoteWisePositionalEncoding (1 + p w) per note before the sum-->     (B, T, D)
          + sinusoidal frame positions + performer embedding
          --decoder (6 FFT blocks, frame padding masked)--> Linear --> log-mel  (B, n_mels, T)

With ``harmonic_prior=True`` (the built-in CPU params; not in the paper), the sounding notes' partials
in mel bands (pipeline.models.harmonic_prior, ``prior`` (B, T, n_mels) in [0, 1]) enter twice: a
linear projection is added to the decoder's input, and ``softplus(Linear(decoder output)) * prior``
to the output log-mel, so where a pitch's partials go is computed, not learned per pitch from a
handful of pieces. It needs the mel recipe (``sample_rate``, ``n_fft``, ``fmin``, ``fmax``), which
the training stage fills in from the ``mel`` params group.

Ablations (paper section 4.4):

* ``note_wise_pe=False``: the plain mixer output goes on (no ``w``);
* ``performer_embedding=False``: no performer embedding, the output ignores ``performer``;
* ``use_encoder=False`` ("without encoder"): no note embedding, encoder or mixer; the decoder
  gets a linear projection of the piano roll and the position roll (pipeline.models.rolls,
  128 pitches each, concatenated) plus frame positions and the performer embedding. The
  position roll carries the note-wise position, so ``note_wise_pe`` has no effect there.

Loss: MSE of the log-mel over real frames (:func:`synthesis_loss`).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.base import Model
from pipeline.models.harmonic_prior import HarmonicPrior
from pipeline.models.losses import masked_mse
from pipeline.models.mixer import PolyphonicMixer
from pipeline.models.note_encoding import NoteEmbedding
from pipeline.models.notewise_pe import NoteWisePositionalEncoding
from pipeline.models.performer_blend import performer_vectors
from pipeline.models.rolls import piano_and_position_rolls
from pipeline.models.transformer import FFTStack, SinusoidalPositions

__all__ = ["SynthesisModel", "synthesis_loss"]


class SynthesisModel(Model):
    """Notes (B, N) with performed frames + performer (B,) -> (B, n_mels, T) log-mel."""

    def __init__(
        self,
        n_performers: int = 32,
        d_model: int = 128,
        encoder_layers: int = 3,
        decoder_layers: int = 6,
        heads: int = 2,
        attention_dim: int = 128,
        ffn_dim: int = 512,
        kernels: tuple[int, int] = (9, 1),
        dropout: float = 0.2,
        n_mels: int = 80,
        max_time: int = 96,
        max_duration: int = 96,
        use_velocity: bool = False,
        note_wise_pe: bool = True,
        performer_embedding: bool = True,
        use_encoder: bool = True,
        max_notes: int = 1000,
        max_frames: int = 1000,
        performer_names: tuple[str, ...] = (),
        harmonic_prior: bool = False,
        sample_rate: int | None = None,
        n_fft: int | None = None,
        fmin: float | None = None,
        fmax: float | None = None,
    ) -> None:
        super().__init__()
        recipe = dict(sample_rate=sample_rate, n_fft=n_fft, fmin=fmin, fmax=fmax)
        if harmonic_prior and any(v is None for v in recipe.values()):
            missing = ", ".join(k for k, v in recipe.items() if v is None)
            raise ValueError(f"harmonic_prior needs the mel recipe: pass {missing}")
        if len(performer_names) > n_performers:
            raise ValueError(f"{len(performer_names)} performer names for {n_performers} performer embeddings")
        self.use_encoder = use_encoder
        self.use_velocity = use_velocity
        if use_encoder:
            self.notes = NoteEmbedding(d_model, max_time, max_duration, use_velocity)
            self.note_positions = SinusoidalPositions(d_model, max_notes)
            self.encoder = FFTStack(encoder_layers, d_model, heads, attention_dim, ffn_dim, kernels, dropout)
            self.mixer = PolyphonicMixer()
            self.notewise_pe = NoteWisePositionalEncoding(d_model) if note_wise_pe else None
        else:
            self.roll_projection = nn.Linear(2 * 128, d_model)
        self.frame_positions = SinusoidalPositions(d_model, max_frames)
        self.performer = nn.Embedding(n_performers, d_model) if performer_embedding else None
        self.decoder = FFTStack(decoder_layers, d_model, heads, attention_dim, ffn_dim, kernels, dropout)
        self.out = nn.Linear(d_model, n_mels)
        self.prior: HarmonicPrior | None = None
        if harmonic_prior:
            self.prior = HarmonicPrior(
                sample_rate=int(sample_rate),  # type: ignore[arg-type]
                n_fft=int(n_fft),  # type: ignore[arg-type]
                n_mels=n_mels,
                fmin=float(fmin),  # type: ignore[arg-type]
                fmax=float(fmax),  # type: ignore[arg-type]
            )
            self.prior_in = nn.Linear(n_mels, d_model)
            self.prior_gain = nn.Linear(d_model, n_mels)  # softplus: how strongly each band follows the partials

    def frame_inputs(
        self,
        pitch: torch.Tensor,
        onset: torch.Tensor,
        duration: torch.Tensor,
        onset_frame: torch.Tensor,
        offset_frame: torch.Tensor,
        note_mask: torch.Tensor,
        n_frames: int,
        velocity: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T, D) frame embeddings fed to the decoder, before frame positions and performer."""
        if not self.use_encoder:
            piano, position = piano_and_position_rolls(
                pitch,
                onset_frame,
                offset_frame,
                note_mask,
                n_frames,
                velocity if self.use_velocity else None,
                self.roll_projection.weight.dtype,
            )
            return self.roll_projection(torch.cat([piano, position], dim=-1))
        notes = self.encoder(self.note_positions(self.notes(pitch, onset, duration, note_mask, velocity)), note_mask)
        mixed = self.mixer(notes, onset_frame, offset_frame, note_mask, n_frames)
        return mixed.frames if self.notewise_pe is None else self.notewise_pe(notes, mixed)

    def forward(
        self,
        pitch: torch.Tensor,
        onset: torch.Tensor,
        duration: torch.Tensor,
        onset_frame: torch.Tensor,
        offset_frame: torch.Tensor,
        note_mask: torch.Tensor,
        performer: torch.Tensor,
        frame_mask: torch.Tensor,
        velocity: torch.Tensor | None = None,
        performer_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Log-mel of the aligned notes.

        pitch, onset, duration (ticks), velocity: (B, N) long; onset_frame/offset_frame: (B, N) long
        performed frames (offset exclusive); note_mask: (B, N) bool; performer: (B,) long;
        frame_mask: (B, T) bool, True for real frames (T = the number of output frames).
        performer_weights: optional (B, n_performers) float, a blend of performers that replaces the
        lookup of ``performer`` (:func:`pipeline.models.performer_blend.performer_vectors`); ignored,
        like ``performer``, without a performer embedding. Returns (B, n_mels, T) float.
        """
        n_frames = frame_mask.shape[1]
        x = self.frame_positions(
            self.frame_inputs(pitch, onset, duration, onset_frame, offset_frame, note_mask, n_frames, velocity)
        )
        if self.performer is not None:
            x = x + performer_vectors(self.performer, performer, performer_weights)[:, None, :]
        if self.prior is None:
            return self.out(self.decoder(x, frame_mask)).transpose(1, 2)
        prior = self.prior(pitch, onset_frame, offset_frame, note_mask, n_frames).to(x.dtype)
        hidden = self.decoder(x + self.prior_in(prior), frame_mask)
        mel = self.out(hidden) + nn.functional.softplus(self.prior_gain(hidden)) * prior
        return mel.transpose(1, 2)

    @staticmethod
    def loss(pred: torch.Tensor, target_mel: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """See :func:`synthesis_loss`."""
        return synthesis_loss(pred, target_mel, frame_mask)


def synthesis_loss(pred: torch.Tensor, target_mel: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """MSE of the log-mel over real frames: pred, target (B, n_mels, T); frame_mask (B, T) bool."""
    return masked_mse(pred, target_mel, frame_mask[:, None, :])


# ------------------------------------------------------------------ batch adapter (training, evaluation, rendering)


def synthesis_inputs(model: SynthesisModel, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | None]:
    """Model keyword arguments from a ``collate_clips`` batch (shared by training, evaluation, rendering)."""
    velocity = batch["velocity"] if model.hparams["use_velocity"] else None
    inputs: dict[str, torch.Tensor | None] = dict(
        pitch=batch["pitch"],
        onset=batch["score_onset"],
        duration=batch["score_duration"],
        onset_frame=batch["onset_frame"],
        offset_frame=batch["offset_frame"],
        note_mask=batch["note_mask"],
        performer=batch["performer"],
        frame_mask=batch["frame_mask"],
        velocity=velocity,
    )
    if "performer_weights" in batch:  # a blend of performers (rendering); training batches have none
        inputs["performer_weights"] = batch["performer_weights"]
    return inputs
