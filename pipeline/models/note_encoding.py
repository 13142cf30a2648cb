"""Note embedding: a score note (pitch, metric onset, metric duration, velocity) -> a vector.

Metric time is in ticks at 24 per quarter note (``score_onset``/``score_duration`` of
pipeline.features). It is tokenised as follows, following the paper's "max time 96 / max
duration 96" (96 ticks = four quarter notes = one 4/4 bar):

* **time token** = the inter-onset interval (IOI): the note's score onset minus the score onset
  of the previous valid note in sequence order, clipped to ``0 .. max_time``. The first valid
  note of a sequence gets 0; notes of a chord after its first note get 0. Negative IOIs (a
  sequence not sorted by onset) count as 0.
* **duration token** = the score duration in ticks clipped to ``0 .. max_duration``.

Why an IOI rather than a position in the bar or beat: training clips are cut out of longer
pieces and their score times are shifted so that the clip's first note is at 0
(pipeline.datasets.clips), and the feature files carry no bar lines. A position in the bar or
beat would therefore change with where a clip happens to be cut; the IOI does not. The tokens
are deterministic and identical for a note whatever clip it appears in, except for the first
note of the clip (IOI 0). Absolute position in the sequence comes from the sinusoidal encoding
of the note index, added by the models.

Each token indexes its own embedding table (pitch: 128 MIDI pitches; time: max_time + 1;
duration: max_duration + 1; velocity: 128, optional, used for piano only); the embeddings are
summed. Pitch and velocity are clamped to 0..127.

Shapes: note arrays (B, N), ``mask`` (B, N) bool, True where a note is real (valid notes may sit
anywhere, padding is usually at the end); output (B, N, dim).
"""

from __future__ import annotations

import torch
from torch import nn


def inter_onset_ticks(onset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, N) long: onset minus the onset of the previous valid note, >= 0; 0 for the first valid
    note and for padding. Unclipped (the time token clips it to ``max_time``)."""
    index = torch.arange(onset.shape[1], device=onset.device).expand_as(onset)
    last_valid = torch.cummax(torch.where(mask, index, torch.full_like(index, -1)), dim=1).values
    previous = torch.cat([torch.full_like(last_valid[:, :1], -1), last_valid[:, :-1]], dim=1)
    previous_onset = torch.gather(onset, 1, previous.clamp(min=0))
    ioi = torch.where(previous >= 0, onset - previous_onset, torch.zeros_like(onset))
    return torch.where(mask, ioi.clamp(min=0), torch.zeros_like(ioi))


def metric_tokens(
    onset: torch.Tensor, duration: torch.Tensor, mask: torch.Tensor, max_time: int = 96, max_duration: int = 96
) -> tuple[torch.Tensor, torch.Tensor]:
    """(time tokens, duration tokens), each (B, N) long in ``0 .. max_time`` / ``0 .. max_duration``."""
    time = inter_onset_ticks(onset.long(), mask).clamp(0, max_time)
    dur = torch.where(mask, duration.long(), torch.zeros_like(duration, dtype=torch.long)).clamp(0, max_duration)
    return time, dur


class NoteEmbedding(nn.Module):
    """Sum of pitch, time-token, duration-token and (optionally) velocity embeddings."""

    def __init__(self, dim: int = 128, max_time: int = 96, max_duration: int = 96, use_velocity: bool = False) -> None:
        super().__init__()
        self.max_time = max_time
        self.max_duration = max_duration
        self.pitch = nn.Embedding(128, dim)
        self.time = nn.Embedding(max_time + 1, dim)
        self.duration = nn.Embedding(max_duration + 1, dim)
        self.velocity = nn.Embedding(128, dim) if use_velocity else None

    def forward(
        self,
        pitch: torch.Tensor,
        onset: torch.Tensor,
        duration: torch.Tensor,
        mask: torch.Tensor,
        velocity: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, N) pitch, onset/duration ticks, mask[, velocity] -> (B, N, dim); padding is zero."""
        time, dur = metric_tokens(onset, duration, mask, self.max_time, self.max_duration)
        x = self.pitch(pitch.long().clamp(0, 127)) + self.time(time) + self.duration(dur)
        if self.velocity is not None:
            if velocity is None:
                raise ValueError("this model was built with use_velocity=True: pass velocity")
            x = x + self.velocity(velocity.long().clamp(0, 127))
        return x.masked_fill(~mask[..., None], 0.0)
