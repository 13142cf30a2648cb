import librosa
import numpy as np
import pytest
import torch

from pipeline.mel import LogMelSpectrogram, log_mel
from tests._params import MEL


@pytest.mark.parametrize("samples", [256 * 40, 256 * 40 + 1, 256 * 40 + 255, 16000])
def test_frame_count_is_length_over_hop(samples):
    mel = log_mel(np.random.default_rng(0).standard_normal(samples).astype(np.float32) * 0.1, MEL)
    assert mel.shape == (80, samples // 256)


def test_values_match_librosa_on_a_chirp():
    sr, cfg = 16000, MEL
    t = np.arange(sr) / sr
    audio = (0.5 * np.sin(2 * np.pi * (200 * t + 1500 * t**2))).astype(np.float32)
    ours = log_mel(audio, cfg)
    pad = (cfg.n_fft - cfg.hop_length) // 2
    padded = np.pad(audio, pad, mode="reflect")
    stft = librosa.stft(
        padded, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window="hann", center=False
    )
    spec = np.sqrt(np.abs(stft) ** 2 + 1e-9)  # the recipe's magnitude epsilon
    basis = librosa.filters.mel(sr=sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    reference = np.log(np.maximum(basis @ spec, cfg.clamp))
    assert reference.shape == ours.shape
    loud = reference > -9  # float32 rounding dominates near the clamp floor (log 1e-5 = -11.5)
    np.testing.assert_allclose(ours[loud], reference[loud], atol=1e-3)
    np.testing.assert_allclose(ours, reference, atol=1e-2)


def test_pure_tone_peaks_in_its_mel_band_and_silence_is_the_floor():
    sr = 16000
    tone = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(sr) / sr).astype(np.float32)
    mel = log_mel(tone, MEL)
    centers = librosa.mel_frequencies(n_mels=82, fmin=0, fmax=8000)[1:-1]
    assert abs(centers[int(np.argmax(mel[:, 10:-10].mean(axis=1)))] - 1000) < 60
    assert np.allclose(log_mel(np.zeros(sr, np.float32), MEL), np.log(1e-5), atol=1e-3)


def test_batched_module_equals_single_clip():
    module = LogMelSpectrogram(MEL)
    x = torch.randn(3, 8192) * 0.1
    batch = module(x)
    assert batch.shape == (3, 80, 32)
    torch.testing.assert_close(batch[1], module(x[1]))
