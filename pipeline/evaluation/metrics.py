"""Objective metrics of the evaluate stage. Audio is mono float32 at 16 kHz unless stated.

* :func:`mel_mse`, :func:`audio_mel_mse`: the paper's Table 2 metric (log-mel MSE), on a mel
  prediction or on the mel of a waveform (the project's one recipe, pipeline.mel);
* :func:`multi_resolution_stft_distance`: spectral convergence + log-magnitude L1 at three
  resolutions (the Parallel WaveGAN / HiFi-GAN family's multi-resolution STFT distance);
* :func:`pitch_accuracy`: f0 by probabilistic YIN (librosa.pyin; torchcrepe and PESTO both need
  torchaudio, which cannot be installed beside this torch), share of frames within 50 cents of a
  sounding score pitch;
* :func:`onset_f1`: onsets detected with librosa's spectral-flux detector, scored with mir_eval;
* :func:`timing_errors`: onset and duration errors of a timing prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import MelConfig

SAMPLE_RATE = 16000
HOP = 256


def mel_mse(predicted: np.ndarray, target: np.ndarray) -> float:
    """MSE of two log-mels ``(n_mels, T)``, over the frames both have."""
    predicted, target = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
    if predicted.shape[0] != target.shape[0]:
        raise ValueError(f"mel bins differ: {predicted.shape[0]} vs {target.shape[0]}")
    frames = min(predicted.shape[1], target.shape[1])
    if frames == 0:
        return float("nan")
    return float(np.mean((predicted[:, :frames] - target[:, :frames]) ** 2))


def audio_mel_mse(audio: np.ndarray, reference_audio: np.ndarray, config: MelConfig | None = None) -> float:
    """Log-mel MSE between the mels of two waveforms (the end-to-end Table 2 score of a system)."""
    from pipeline.mel import log_mel

    config = config or MelConfig()
    return mel_mse(log_mel(np.asarray(audio, np.float32), config), log_mel(np.asarray(reference_audio, np.float32), config))


def multi_resolution_stft_distance(audio: np.ndarray, reference: np.ndarray,
                                   resolutions: tuple[tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024),
                                                                                    (2048, 512, 2048))) -> float:
    """Mean over (n_fft, hop, win) resolutions of spectral convergence + mean |log |X| - log |Y||.

    0 for identical signals; grows with any difference in magnitude spectra (shifts, noise, timbre).
    """
    import librosa

    n = min(len(audio), len(reference))
    x, y = np.asarray(audio[:n], np.float32), np.asarray(reference[:n], np.float32)
    total = 0.0
    for n_fft, hop, win in resolutions:
        sx = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, center=True))
        sy = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, center=True))
        convergence = np.linalg.norm(sy - sx) / max(np.linalg.norm(sy), 1e-7)
        log_distance = np.mean(np.abs(np.log(np.maximum(sx, 1e-7)) - np.log(np.maximum(sy, 1e-7))))
        total += convergence + log_distance
    return float(total / len(resolutions))


def f0_track(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, hop_length: int = HOP, fmin: float = 65.0,
             fmax: float = 2100.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times_s, f0_hz with NaN where unvoiced, voiced bool), one value per ``hop_length`` samples.

    pYIN frames are centred: frame ``k`` describes the audio around ``k * hop_length`` samples.
    """
    import librosa

    f0, voiced, _ = librosa.pyin(np.asarray(audio, np.float32), fmin=fmin, fmax=fmax, sr=sample_rate,
                                 frame_length=1024, hop_length=hop_length, center=True)
    times = np.arange(len(f0)) * hop_length / sample_rate
    return times, np.where(voiced, f0, np.nan), voiced.astype(bool)


@dataclass
class PitchAccuracy:
    accuracy: float  # share of score-sounding frames that are voiced and within tolerance of a sounding pitch
    voiced: float  # share of score-sounding frames that are voiced at all
    frames: int  # score-sounding frames considered


def pitch_accuracy(audio: np.ndarray, notes_pitch: np.ndarray, notes_onset_s: np.ndarray, notes_offset_s: np.ndarray,
                   sample_rate: int = SAMPLE_RATE, tolerance_cents: float = 50.0, hop_length: int = HOP,
                   tuning_cents: float = 0.0) -> PitchAccuracy:
    """How often the audio's f0 matches a score pitch sounding at that time (monophonic material).

    Frames where no score note sounds are ignored; ``tuning_cents`` shifts the score (e.g. -100 for
    baroque pitch). Octave errors count as wrong.
    """
    times, f0, voiced = f0_track(audio, sample_rate, hop_length)
    pitch = np.asarray(notes_pitch, np.float64) + tuning_cents / 100.0
    onset, offset = np.asarray(notes_onset_s, np.float64), np.asarray(notes_offset_s, np.float64)
    sounding = (times[:, None] >= onset[None, :]) & (times[:, None] < offset[None, :])  # (frames, notes)
    considered = sounding.any(axis=1)
    if not considered.any():
        return PitchAccuracy(float("nan"), float("nan"), 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        midi = 69.0 + 12.0 * np.log2(f0 / 440.0)  # NaN where unvoiced
    cents = np.abs(midi[:, None] - pitch[None, :]) * 100.0
    match = (sounding & (cents <= tolerance_cents)).any(axis=1) & voiced
    return PitchAccuracy(float(match[considered].mean()), float(voiced[considered].mean()), int(considered.sum()))


@dataclass
class OnsetScore:
    f1: float
    precision: float
    recall: float
    detected: np.ndarray  # onset times in seconds


def detect_onsets(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, hop_length: int = 128) -> np.ndarray:
    """Onset times (s): librosa's spectral-flux onset strength and peak picking, at ``hop_length``."""
    import librosa

    audio = np.asarray(audio, np.float32)
    if not np.any(audio):
        return np.zeros(0)
    strength = librosa.onset.onset_strength(y=audio, sr=sample_rate, hop_length=hop_length)
    frames = librosa.onset.onset_detect(onset_envelope=strength, sr=sample_rate, hop_length=hop_length,
                                        backtrack=False, units="frames")
    return librosa.frames_to_time(frames, sr=sample_rate, hop_length=hop_length)


def onset_f1(audio: np.ndarray, reference_onsets_s: np.ndarray, sample_rate: int = SAMPLE_RATE,
             window_s: float = 0.05) -> OnsetScore:
    """Note-onset F-measure (mir_eval) of onsets detected in ``audio`` against the reference."""
    import mir_eval

    reference = np.unique(np.asarray(reference_onsets_s, np.float64))
    detected = detect_onsets(audio, sample_rate)
    if len(reference) == 0:
        return OnsetScore(float("nan"), float("nan"), float("nan"), detected)
    if len(detected) == 0:
        return OnsetScore(0.0, 0.0, 0.0, detected)
    f1, precision, recall = mir_eval.onset.f_measure(reference, detected, window=window_s)
    return OnsetScore(float(f1), float(precision), float(recall), detected)


def timing_errors(predicted_onset_frames: np.ndarray, true_onset_frames: np.ndarray,
                  predicted_duration_frames: np.ndarray, true_duration_frames: np.ndarray,
                  frame_seconds: float = HOP / SAMPLE_RATE) -> dict[str, float]:
    """Mean (and median onset) absolute errors in frames and milliseconds."""
    onset = np.abs(np.asarray(predicted_onset_frames, np.float64) - np.asarray(true_onset_frames, np.float64))
    duration = np.abs(np.asarray(predicted_duration_frames, np.float64) - np.asarray(true_duration_frames, np.float64))
    ms = frame_seconds * 1000.0
    return {"onset_mae_frames": float(onset.mean()), "onset_mae_ms": float(onset.mean() * ms),
            "onset_median_ms": float(np.median(onset) * ms),
            "duration_mae_frames": float(duration.mean()), "duration_mae_ms": float(duration.mean() * ms)}
