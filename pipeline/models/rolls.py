"""Piano roll and position roll of aligned notes: the "without encoder" input of the synthesis model.

* piano roll (B, T, 128): 1 where a note of that pitch sounds in the frame (``velocity / 127``
  instead of 1 when velocities are given), clipped to 1 where notes of one pitch overlap;
* position roll (B, T, 128): like the piano roll, but each note's value falls linearly from 1
  on its first frame to 0 on its last (``1 - p``, with p from pipeline.models.mixer; a one-frame
  note is 1), clipped to 1 where notes of one pitch overlap.

Built with one matmul against a one-hot pitch matrix, no loop over notes or frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.models.mixer import sounding_and_position, sounding_mask


def piano_roll(
    pitch: torch.Tensor,
    onset_frame: torch.Tensor,
    offset_frame: torch.Tensor,
    note_mask: torch.Tensor,
    n_frames: int,
    velocity: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The piano roll (B, T, 128) alone, from (B, N) notes in frames (for callers that do not use
    the position roll: the harmonic prior, PerformanceNet)."""
    sounding = sounding_mask(onset_frame, offset_frame, note_mask, n_frames).to(dtype)
    return _pitch_roll(sounding, pitch, velocity, dtype)


def _pitch_roll(
    sounding: torch.Tensor, pitch: torch.Tensor, velocity: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """(B, T, N) sounding -> (B, T, 128) piano roll."""
    one_hot = F.one_hot(pitch.long().clamp(0, 127), 128).to(dtype)  # (B, N, 128)
    level = sounding if velocity is None else sounding * (velocity.to(dtype).clamp(0, 127) / 127.0)[:, None, :]
    return torch.bmm(level, one_hot).clamp(max=1.0)


def piano_and_position_rolls(
    pitch: torch.Tensor,
    onset_frame: torch.Tensor,
    offset_frame: torch.Tensor,
    note_mask: torch.Tensor,
    n_frames: int,
    velocity: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(piano roll, position roll), each (B, T, 128), from (B, N) notes in frames."""
    sounding, position = sounding_and_position(onset_frame, offset_frame, note_mask, n_frames, dtype)
    piano = _pitch_roll(sounding, pitch, velocity, dtype)
    one_hot = F.one_hot(pitch.long().clamp(0, 127), 128).to(dtype)
    falling = torch.bmm(sounding * (1.0 - position), one_hot).clamp(max=1.0)
    return piano, falling
