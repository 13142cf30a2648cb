"""Alignment model: score notes in metric time -> performed onset and duration of every note, in frames.

A transformer encoder (FastSpeech FFT blocks, pipeline.models.transformer) reads the note
embeddings (pipeline.models.note_encoding: pitch + inter-onset-interval token + duration token
[+ velocity]) plus the sinusoidal encoding of the note index, a performer embedding and a tempo
class embedding (pipeline.models.tempo), both added to every note. A linear head gives per-note
outputs, turned into predictions as follows.

**What is predicted.** ``forward`` returns ``(B, N, 2)``: ``[..., 0]`` the onset frame of every
note relative to the clip start (the ``target_onset`` of pipeline.datasets.clips; may be
negative for a note that started before the clip) and ``[..., 1]`` its duration in frames
(``target_duration``). Onsets are **not** regressed directly: the head predicts the inter-onset
interval in frames of each note (the first note's "interval" being its offset from the clip
start) and the onsets are their cumulative sum along the note sequence. An attention model
cannot easily count up absolute positions, while intervals are local quantities.

**Tempo prior** (``tempo_prior=True``, the default). The nominal constant-tempo rendering at the
centre of the tempo class,
``frames_per_tick = frame_rate * 60 / (qpm_centre * ticks_per_quarter)``, is built in:

    interval_n = ioi_ticks_n * frames_per_tick * exp(a_n) + b_n
    duration_n = duration_ticks_n * frames_per_tick * exp(c_n) + e_n

with ``(a, b, c, e)`` the head's outputs (``a``, ``c`` clamped to +-3; ticks unclipped here). The
head starts at zero, so an untrained model *is* the constant-tempo baseline and learns local
tempo changes (``a``, ``c``) and timing offsets (``b``, ``e``). With ``tempo_prior=False`` the
head predicts the interval and duration in frames directly, as in the paper's description.

Loss: MSE in frames over onsets and durations of valid notes (:func:`alignment_loss`).
:func:`to_timeline` turns predictions into a playable, valid timeline.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.base import Model
from pipeline.models.losses import masked_mse
from pipeline.models.note_encoding import NoteEmbedding, inter_onset_ticks
from pipeline.models.performer_blend import performer_vectors
from pipeline.models.tempo import N_TEMPO_CLASSES, TEMPO_RANGE, tempo_centers, tempo_class, tempo_classes
from pipeline.models.transformer import FFTStack, SinusoidalPositions

__all__ = ["AlignmentModel", "alignment_loss", "to_timeline", "tempo_class", "tempo_classes"]

LOG_SCALE_LIMIT = 3.0


class AlignmentModel(Model):
    """Notes (B, N) + performer (B,) + tempo class (B,) -> (B, N, 2) onset and duration in frames."""

    frames_per_tick: torch.Tensor  # buffer (register_buffer in __init__)

    def __init__(
        self,
        *,
        frame_rate: float,
        n_performers: int = 32,
        n_tempo_classes: int = N_TEMPO_CLASSES,
        tempo_range: tuple[float, float] = TEMPO_RANGE,
        d_model: int = 128,
        layers: int = 3,
        heads: int = 2,
        attention_dim: int = 64,
        ffn_dim: int = 256,
        kernels: tuple[int, int] = (9, 1),
        dropout: float = 0.2,
        max_time: int = 96,
        max_duration: int = 96,
        use_velocity: bool = False,
        max_notes: int = 1000,
        tempo_prior: bool = True,
        ticks_per_quarter: int = 24,
        performer_names: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        if len(performer_names) > n_performers:
            raise ValueError(f"{len(performer_names)} performer names for {n_performers} performer embeddings")
        self.tempo_prior = tempo_prior
        self.notes = NoteEmbedding(d_model, max_time, max_duration, use_velocity)
        self.positions = SinusoidalPositions(d_model, max_notes)
        self.performer = nn.Embedding(n_performers, d_model)
        self.tempo = nn.Embedding(n_tempo_classes, d_model)
        self.encoder = FFTStack(layers, d_model, heads, attention_dim, ffn_dim, kernels, dropout)
        self.head = nn.Linear(d_model, 4 if tempo_prior else 2)
        if tempo_prior:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        qpm = torch.as_tensor(tempo_centers(n_tempo_classes, tempo_range), dtype=torch.float32)
        self.register_buffer("frames_per_tick", frame_rate * 60.0 / (qpm * ticks_per_quarter), persistent=False)

    def forward(
        self,
        pitch: torch.Tensor,
        onset: torch.Tensor,
        duration: torch.Tensor,
        mask: torch.Tensor,
        performer: torch.Tensor,
        tempo: torch.Tensor,
        velocity: torch.Tensor | None = None,
        performer_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted (onset frame, duration in frames) of every note.

        pitch, onset, duration (ticks), velocity: (B, N) long; mask: (B, N) bool, True = real note;
        performer: (B,) long; tempo: (B,) long tempo class. Returns (B, N, 2) float, zero at padding.
        performer_weights: optional (B, n_performers) float, a blend of performers that replaces the
        lookup of ``performer`` (:func:`pipeline.models.performer_blend.performer_vectors`).
        """
        x = self.positions(self.notes(pitch, onset, duration, mask, velocity))
        x = x + (performer_vectors(self.performer, performer, performer_weights) + self.tempo(tempo))[:, None, :]
        out = self.head(self.encoder(x, mask)).float()  # timing arithmetic in float32, also under autocast
        if self.tempo_prior:
            scale = self.frames_per_tick[tempo][:, None]
            ioi = inter_onset_ticks(onset.long(), mask).to(out.dtype) * scale
            dur = duration.to(out.dtype).clamp(min=0) * scale
            log_scale = out[..., 0::2].clamp(-LOG_SCALE_LIMIT, LOG_SCALE_LIMIT).exp()
            interval = ioi * log_scale[..., 0] + out[..., 1]
            length = dur * log_scale[..., 1] + out[..., 3]
        else:
            interval, length = out[..., 0], out[..., 1]
        interval = interval.masked_fill(~mask, 0.0)
        pred = torch.stack([interval.cumsum(dim=1), length], dim=-1)
        return pred.masked_fill(~mask[..., None], 0.0)

    @staticmethod
    def loss(
        pred: torch.Tensor, target_onset_frames: torch.Tensor, target_duration_frames: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """See :func:`alignment_loss`."""
        return alignment_loss(pred, target_onset_frames, target_duration_frames, mask)

    @staticmethod
    def to_timeline(
        pred: torch.Tensor, score_onset: torch.Tensor, mask: torch.Tensor, n_frames: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See :func:`to_timeline`."""
        return to_timeline(pred, score_onset, mask, n_frames)


def alignment_loss(
    pred: torch.Tensor, target_onset_frames: torch.Tensor, target_duration_frames: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """MSE in frames over the onsets and durations of valid notes (both count equally).

    pred: (B, N, 2); targets: (B, N) float frames; mask: (B, N) bool.
    """
    target = torch.stack([target_onset_frames, target_duration_frames], dim=-1)
    return masked_mse(pred, target, mask[..., None])


def to_timeline(
    pred: torch.Tensor, score_onset: torch.Tensor, mask: torch.Tensor, n_frames: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid integer timeline ``(onset_frame, offset_frame)``, each (B, N) long, from predictions.

    pred: (B, N, 2) (onset, duration) in frames; score_onset: (B, N) ticks; mask: (B, N) bool.
    Guarantees for the valid notes of every item:

    * notes with equal score onset (chords) get the same onset: the mean of their predictions;
    * onsets are a non-decreasing function of the score onset (running maximum over the notes
      taken in score-onset order), so they are monotone wherever the score is;
    * onsets are >= 0 (and <= ``n_frames - 1`` when ``n_frames`` is given);
    * ``offset = onset + max(1, round(duration))`` (clipped to ``n_frames`` when given, still
      ``> onset``).

    Padding gets onset 0, offset 1. Rounding is to the nearest frame.
    """
    onset, duration = pred[..., 0].detach().float(), pred[..., 1].detach().float()
    last = torch.full_like(score_onset, torch.iinfo(torch.long).max, dtype=torch.long)
    key = torch.where(mask, score_onset.long(), last)  # padding sorts last
    order = torch.argsort(key, dim=1, stable=True)
    sorted_key = torch.gather(key, 1, order)
    sorted_valid = torch.gather(mask, 1, order).float()
    sorted_onset = torch.gather(onset, 1, order) * sorted_valid
    starts = torch.ones_like(sorted_key, dtype=torch.bool)
    starts[:, 1:] = sorted_key[:, 1:] != sorted_key[:, :-1]
    group = starts.long().cumsum(dim=1) - 1
    total = torch.zeros_like(sorted_onset).scatter_add_(1, group, sorted_onset)
    count = torch.zeros_like(sorted_onset).scatter_add_(1, group, sorted_valid)
    chord = torch.gather(total / count.clamp(min=1.0), 1, group)
    chord = torch.cummax(chord, dim=1).values.clamp(min=0.0)  # padding sorts last: never raises a valid note
    if n_frames is not None:
        chord = chord.clamp(max=float(n_frames - 1))
    sorted_frames = torch.round(chord).long()
    onset_frame = torch.empty_like(sorted_frames).scatter_(1, order, sorted_frames)
    offset_frame = onset_frame + torch.round(duration).clamp(min=1.0).long()
    if n_frames is not None:
        offset_frame = offset_frame.clamp(max=n_frames)
    onset_frame = onset_frame.masked_fill(~mask, 0)
    offset_frame = offset_frame.masked_fill(~mask, 1)
    return onset_frame, offset_frame


# ------------------------------------------------------------------ batch adapter (training, evaluation, rendering)


def alignment_inputs(model: AlignmentModel, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | None]:
    """Model keyword arguments from a ``collate_clips`` batch (shared by training, evaluation, rendering)."""
    velocity = batch["velocity"] if model.hparams["use_velocity"] else None
    inputs: dict[str, torch.Tensor | None] = dict(
        pitch=batch["pitch"],
        onset=batch["score_onset"],
        duration=batch["score_duration"],
        mask=batch["note_mask"],
        performer=batch["performer"],
        tempo=model_tempo_classes(model, batch["tempo_qpm"]).to(batch["pitch"].device),
        velocity=velocity,
    )
    if "performer_weights" in batch:  # a blend of performers (rendering); training batches have none
        inputs["performer_weights"] = batch["performer_weights"]
    return inputs


def model_tempo_classes(model: AlignmentModel, qpm: torch.Tensor) -> torch.Tensor:
    """(B,) qpm -> the tempo class ids of ``model``'s own classes (its n_tempo_classes and tempo_range)."""
    return tempo_classes(qpm, model.hparams["n_tempo_classes"], tuple(model.hparams["tempo_range"]))


def model_class_tempo(model: AlignmentModel, qpm: torch.Tensor) -> torch.Tensor:
    """(B,) qpm -> the centre (qpm) of its class among ``model``'s tempo classes: what the model is told."""
    centers = torch.as_tensor(
        tempo_centers(model.hparams["n_tempo_classes"], tuple(model.hparams["tempo_range"])), dtype=torch.float32
    )
    return centers[model_tempo_classes(model, qpm).cpu()]


def note_errors(
    onset: torch.Tensor, duration: torch.Tensor, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Absolute onset and duration errors (frames) of a timing prediction ``(B, N)`` against the batch's
    ``target_onset`` / ``target_duration``: the valid notes only, clip after clip. The one definition of the
    timing error: the evaluate stage scores with it and the alignment model's validation reports its mean."""
    mask = batch["note_mask"]
    return (onset - batch["target_onset"]).abs()[mask], (duration - batch["target_duration"]).abs()[mask]
