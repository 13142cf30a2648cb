"""Timing systems of the evaluate stage: the alignment model and its constant-tempo baselines.

Each predicts every note's performed onset and duration in frames for the held-out clips of
``notes="starting"`` (onsets relative to the clip's first note, like the alignment model's
training targets, so the first note costs nothing):

* the alignment model: :class:`pipeline.models.alignment.AlignmentModel` given score, performer
  and tempo class; predictions made valid by ``to_timeline`` (what rendering uses);
* constant tempo (paper Fig. 4): the score played at one tempo, no expressive timing at all,
  given the same tempo information as the alignment model: the centre of the recording's tempo
  class (classes are +-6 % wide, pipeline.models.tempo);
* constant tempo at the exact tempo: the score at the recording's exact average tempo
  (``tempo_qpm`` of the feature index), an oracle that neither the model nor a user rendering a
  score has.

The rows of the table that use them are declared in :mod:`pipeline.evaluation.rows`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from pipeline.models.alignment import AlignmentModel, alignment_inputs, note_errors, to_timeline

Batch = dict[str, torch.Tensor]
TimingSystem = Callable[[Batch], tuple[torch.Tensor, torch.Tensor]]  # batch -> (onset, duration), frames, (B, N)


def constant_tempo(
    batch: Batch, frame_rate: float, ticks_per_quarter: int = 24, qpm: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(onset, duration) in frames, (B, N) float: score ticks at ``qpm`` (B,) (default: the
    recording's exact average tempo)."""
    qpm = batch["tempo_qpm"] if qpm is None else qpm
    frames_per_tick = frame_rate * 60.0 / (qpm[:, None] * ticks_per_quarter)
    return batch["score_onset"].float() * frames_per_tick, batch["score_duration"].float() * frames_per_tick


@torch.inference_mode()
def alignment_model_timing(model: AlignmentModel, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(onset, duration) in frames, (B, N) float, as the renderer would play them."""
    pred = model(**alignment_inputs(model, batch))
    pred[..., 0] -= pred[:, :1, 0]  # the first note of a clip is its time origin, as in the targets
    onset, offset = to_timeline(pred, batch["score_onset"], batch["note_mask"])
    return onset.float(), (offset - onset).float()


def timing_errors(onset: torch.Tensor, duration: torch.Tensor, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Per-note absolute onset and duration errors (frames) of the valid notes, clip after clip."""
    onset_error, duration_error = note_errors(onset, duration, batch)
    return onset_error.numpy(), duration_error.numpy()
