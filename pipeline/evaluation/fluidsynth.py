"""FluidSynth as a system of the evaluate table: the score rendered by the project's FluidSynth
(:mod:`pipeline.rendering`), what users pick today.

The instrument is the alignment reference's (params ``align.soundfont``, ``align.program``,
``align.reference_reverb``): a mechanical rendering with plain note-on/note-off, no vibrato or
expression curves. Its timing is a timing system's (:mod:`pipeline.evaluation.timing`) applied to the
clip's notes: the score at a constant tempo, the alignment model's timing, or the recording's own
aligned timing (what every synthesis row is given, so the fair comparison of the sound alone).

Clip alignment, as for the other systems: every clip's notes are timed from the clip's first note
in score order (the origin of the timing systems' onsets), which is put where the recording plays it
(``target_onset``, unclipped: a note cut by the clip start began before it). The notes are rendered
from the earliest of them (a cut note's attack and sustain are rendered before the clip and its tail
heard in it) and the clip's ``frames * hop_length`` samples are cut out. The recording's tuning is
applied as a pitch bend on every note. The audio is set to the recording clip's level (the
log-mel's mean frame power, :mod:`pipeline.loudness`): loudness is not what this row tests, and
the mel and STFT distances would otherwise mostly measure FluidSynth's gain.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from pipeline.config import MelConfig
from pipeline.loudness import mel_level_db
from pipeline.mel import LogMelSpectrogram
from pipeline.rendering import Instrument, Performance, render

Batch = dict[str, torch.Tensor]
ClipTiming = Callable[[Batch], tuple[torch.Tensor, torch.Tensor]]  # (onset, duration), frames, (B, N)


def recording_timing(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The recording's own aligned (onset, duration), frames (B, N), from the clip's first note in
    score order: what the synthesis systems are given."""
    origin = first_note(batch)
    start = torch.gather(batch["target_onset"].float(), 1, origin[:, None])
    return batch["target_onset"].float() - start, batch["target_duration"].float()


def first_note(batch: Batch) -> torch.Tensor:
    """(B,) index of each clip's first valid note in score order (the timing systems' time origin)."""
    key = torch.where(batch["note_mask"], batch["score_onset"].long(), torch.iinfo(torch.long).max)
    return torch.argmin(key, dim=1)


def clip_performance(
    onset: np.ndarray,
    duration: np.ndarray,
    pitch: np.ndarray,
    velocity: np.ndarray,
    origin_frame: float,
    frame_seconds: float,
    tuning_cents: float,
) -> tuple[Performance, float]:
    """A clip's notes as a :class:`~pipeline.rendering.Performance` starting at time 0, and the time (s)
    of the clip's start in it. ``onset``/``duration`` (N,) frames from the first note, which the
    recording plays at ``origin_frame`` (frames from the clip start; negative: before it)."""
    start = (origin_frame + np.asarray(onset, np.float64)) * frame_seconds  # seconds from the clip start
    pre_roll = max(0.0, -float(start.min())) if len(start) else 0.0
    onset_s = start + pre_roll
    offset_s = onset_s + np.maximum(np.asarray(duration, np.float64), 1.0) * frame_seconds
    bend = [np.full(1, float(tuning_cents))] * len(onset_s)  # held for the note (rendering resets it at note-off)
    perf = Performance(
        onset_s, offset_s, np.clip(np.asarray(pitch), 0, 127).astype(np.int64), np.asarray(velocity), bend_cents=bend
    )
    return perf, pre_roll


def render_clip(
    perf: Performance, clip_start: float, samples: int, instrument: Instrument, sample_rate: int
) -> np.ndarray:
    """``samples`` mono float32 samples of ``perf`` rendered, from ``clip_start`` seconds on (zeros past
    the rendering's end)."""
    first = int(round(clip_start * sample_rate))
    tail = max(0.0, (first + samples) / sample_rate - float(np.max(perf.offset, initial=0.0)))
    audio = render(perf, instrument, sample_rate, tail=tail).mean(axis=1)
    out = np.zeros(samples, np.float32)
    piece = audio[first : first + samples]
    out[: len(piece)] = piece
    return out


def fluidsynth_system(timing: ClipTiming, instrument: Instrument, mel_config: MelConfig):
    """A system (:data:`pipeline.evaluation.systems.System`): each clip's notes timed by ``timing``,
    rendered by FluidSynth with ``instrument``, at the mel recipe's sample rate and the recording clip's
    level; its "own mel" is the mel of its audio (it predicts none, like the HiFi-GAN baseline)."""
    from pipeline.evaluation.systems import ClipOutput  # systems imports nothing of this module

    mel = LogMelSpectrogram(mel_config)
    frame_seconds = mel_config.hop_length / mel_config.sample_rate

    @torch.inference_mode()
    def run(batch: Batch) -> list[ClipOutput]:
        onset, duration = (t.float().numpy() for t in timing(batch))
        origin = first_note(batch).numpy()
        frames = [int(n) for n in batch["frame_mask"].sum(dim=1)]
        outputs = []
        for i, n in enumerate(frames):
            mask = batch["note_mask"][i].numpy()
            perf, clip_start = clip_performance(
                onset[i][mask] - onset[i, origin[i]],
                duration[i][mask],
                batch["pitch"][i][mask].numpy(),
                batch["velocity"][i][mask].numpy(),
                float(batch["target_onset"][i, origin[i]]),
                frame_seconds,
                float(batch["tuning_cents"][i]) if "tuning_cents" in batch else 0.0,
            )
            audio = render_clip(perf, clip_start, n * mel_config.hop_length, instrument, mel_config.sample_rate)
            audio = at_level(audio, mel, float(mel_level_db(batch["mel"][i, :, :n].numpy())))
            outputs.append(ClipOutput(audio, mel(torch.from_numpy(audio)).numpy(), may_be_silent=True))
        return outputs

    return run


def at_level(audio: np.ndarray, mel: LogMelSpectrogram, target_db: float) -> np.ndarray:
    """``audio`` scaled so that its log-mel's level is ``target_db`` (unchanged when either is silent)."""
    own = mel_level_db(mel(torch.from_numpy(audio)).numpy())
    if not (np.isfinite(own) and np.isfinite(target_db)):
        return audio
    return (audio * np.float32(10.0 ** ((target_db - own) / 20.0))).astype(np.float32)
