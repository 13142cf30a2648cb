"""The level of a log-mel, in dB: what a listener hears as loud or quiet, read off the mel.

The project's log-mel is the natural log of a magnitude mel (:mod:`pipeline.mel`), so a frame's
power is ``sum over bands of exp(2 * log_mel)`` and adding ``c`` to every bin multiplies the
waveform's amplitude by ``exp(c)``: a change of ``DB_PER_LOG_UNIT * c`` dB. A vocoder reproduces
the mel's level (its reconstruction is within about 1 dB of the recording's RMS;
docs/benchmarks.md, "Output level"), so setting the level of a mel sets the level of the audio.

Why the synthesis model needs this: it is trained on the log-mel's MSE, so it predicts the mean of
the log, and the mean of the log is below the log of the mean by about ``sigma**2 / 2`` for an
error of variance ``sigma**2``. Its audio comes out several dB quieter than the recordings (5.7-6 dB
on unseen pieces). The training stage therefore measures, on its validation clips (unseen pieces),
how many dB the predicted mel's pooled power falls short of the recordings' (:func:`level_offset_db`)
and stores it in the model; `performer render` and the evaluation add it back (:func:`shift_mel_db`).
It also stores each performer's level in their training recordings, which `performer render
--loudness performer` plays at instead.
"""

from __future__ import annotations

import math

import numpy as np

DB_PER_LOG_UNIT = 20.0 / math.log(10.0)  # dB per unit of log magnitude
# `performer render --loudness`: the measured offsets added back | the performer's training level | as predicted
LOUDNESS = ("calibrated", "performer", "model")


def mel_power(log_mel: np.ndarray) -> tuple[float, int]:
    """``(summed frame power, frames)`` of a log-mel ``(n_mels, frames)``: pool several mels'
    sums, then :func:`level_db` of the pooled sums."""
    log_mel = np.asarray(log_mel, dtype=np.float64)
    if log_mel.ndim != 2:
        raise ValueError(f"a log-mel is (n_mels, frames), got shape {log_mel.shape}")
    return float(np.exp(2.0 * log_mel).sum()), int(log_mel.shape[1])


def level_db(power: float, frames: int) -> float:
    """Mean frame power in dB (``10 log10``); -inf for no frames or no power."""
    if frames <= 0 or power <= 0.0:
        return -math.inf
    return 10.0 * math.log10(power / frames)


def mel_level_db(log_mel: np.ndarray) -> float:
    """The level of a log-mel ``(n_mels, frames)``: its mean frame power in dB."""
    return level_db(*mel_power(log_mel))


def set_mel_level(log_mel: np.ndarray, target_db: float) -> np.ndarray:
    """``log_mel`` shifted so that :func:`mel_level_db` gives ``target_db`` (the audio's RMS moves
    by the same dB); a silent mel is returned unchanged."""
    current = mel_level_db(log_mel)
    if not math.isfinite(current) or not math.isfinite(target_db):
        return log_mel
    return (log_mel + (target_db - current) / DB_PER_LOG_UNIT).astype(log_mel.dtype, copy=False)


def shift_mel_db(log_mel: np.ndarray, db: float) -> np.ndarray:
    """``log_mel`` made ``db`` dB louder (every bin: the dynamics inside it are kept)."""
    if db == 0.0:
        return log_mel
    return (log_mel + db / DB_PER_LOG_UNIT).astype(log_mel.dtype, copy=False)


def level_offset_db(target_power: float, predicted_power: float) -> float:
    """dB to add to a prediction whose frames sum to ``predicted_power`` so that its pooled level
    equals the target's (:func:`mel_power` sums over the same frames); 0 where either is empty."""
    if target_power <= 0.0 or predicted_power <= 0.0:
        return 0.0
    return 10.0 * math.log10(target_power / predicted_power)
