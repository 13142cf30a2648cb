"""Polyphonic mixer: note embeddings -> frame embeddings by summing the notes sounding in each frame.

FastSpeech's state expansion repeats each token for its duration and concatenates the copies,
which assumes one token per frame. Music is polyphonic, so the mixer *sums* instead:

    frame_t = sum_n s(n, t) v_n,   s(n, t) = 1 if onset_n <= t < offset_n (and note n is real)

It also gives the relative position of frame ``t`` inside every note it belongs to, for the
note-wise positional encoding (pipeline.models.notewise_pe) and the position roll
(pipeline.models.rolls):

    p(n, t) = clip((t - onset_n) / max(1, offset_n - onset_n - 1), 0, 1)   where s(n, t) = 1, else 0

so p = 0 on a note's first frame and 1 on its last (a one-frame note has p = 0 only).

Everything is vectorised as (B, T, N) masks and one batched matmul (B, T, N) @ (B, N, D).
Frames are half-open: ``offset_frame`` is one past the last frame (pipeline.features).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class Mixed(NamedTuple):
    frames: torch.Tensor  # (B, T, D) sum of the embeddings of the notes sounding in each frame
    sounding: torch.Tensor  # (B, T, N) float, 1 where note n sounds in frame t
    position: torch.Tensor  # (B, T, N) float in [0, 1], relative position of frame t in note n (0 elsewhere)


def sounding_and_position(
    onset_frame: torch.Tensor,
    offset_frame: torch.Tensor,
    note_mask: torch.Tensor,
    n_frames: int,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sounding, position), each (B, T, N) of ``dtype``, from (B, N) note frames and mask."""
    t = torch.arange(n_frames, device=onset_frame.device)[None, :, None]
    onset = onset_frame.long()[:, None, :]
    offset = offset_frame.long()[:, None, :]
    sounding = sounding_mask(onset_frame, offset_frame, note_mask, n_frames).to(dtype)
    span = (offset - onset - 1).clamp(min=1).to(dtype)
    position = ((t - onset).to(dtype) / span).clamp(0.0, 1.0)
    return sounding, position * sounding


def sounding_mask(
    onset_frame: torch.Tensor, offset_frame: torch.Tensor, note_mask: torch.Tensor, n_frames: int
) -> torch.Tensor:
    """(B, T, N) bool: note n sounds in frame t (onset <= t < offset, a real note)."""
    t = torch.arange(n_frames, device=onset_frame.device)[None, :, None]
    return (t >= onset_frame.long()[:, None, :]) & (t < offset_frame.long()[:, None, :]) & note_mask[:, None, :]


class PolyphonicMixer(nn.Module):
    """(B, N, D) note embeddings + (B, N) onset/offset frames + (B, N) mask -> :class:`Mixed` over T frames."""

    def forward(
        self,
        notes: torch.Tensor,
        onset_frame: torch.Tensor,
        offset_frame: torch.Tensor,
        note_mask: torch.Tensor,
        n_frames: int,
    ) -> Mixed:
        sounding, position = sounding_and_position(onset_frame, offset_frame, note_mask, n_frames, notes.dtype)
        return Mixed(torch.bmm(sounding, notes), sounding, position)
