import numpy as np
import pytest
import soundfile as sf

from pipeline.audio import load_audio, resample, write_audio
from pipeline.errors import PipelineError


def dominant_frequency(x, sr):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)]


def test_resample_keeps_pitch_and_length():
    sr = 44100
    x = np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr).astype(np.float32)
    y = resample(x, sr, 16000)
    assert len(y) == 32000
    assert abs(dominant_frequency(y, 16000) - 440) < 1.0
    assert abs(np.sqrt(np.mean(y[1000:-1000] ** 2)) - np.sqrt(0.5)) < 0.01


def test_load_mixes_stereo_to_mono_and_resamples(tmp_path):
    sr = 48000
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.zeros_like(t)], axis=1).astype(np.float32) * 0.8
    path = tmp_path / "stereo.flac"
    sf.write(path, stereo, sr)
    audio, rate = load_audio(path, sample_rate=16000)
    assert rate == 16000 and audio.ndim == 1 and len(audio) == 16000
    assert abs(np.max(np.abs(audio[100:-100])) - 0.4) < 0.01  # mean of the two channels
    assert abs(dominant_frequency(audio, 16000) - 300) < 1.5


def test_ogg_opus_and_mp3_round_trip(tmp_path):
    sr = 48000
    x = (0.3 * np.sin(2 * np.pi * 500 * np.arange(sr) / sr)).astype(np.float32)
    for name, fmt, subtype in (("a.opus", "OGG", "OPUS"), ("a.mp3", "MP3", None)):
        sf.write(tmp_path / name, x, sr, format=fmt, subtype=subtype)
        audio, rate = load_audio(tmp_path / name, sample_rate=16000)
        assert rate == 16000 and abs(len(audio) - 16000) < 1200
        assert abs(dominant_frequency(audio, 16000) - 500) < 2


def test_non_audio_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    with pytest.raises(PipelineError, match=r"notes.wav: not a readable audio file") as info:
        load_audio(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(PipelineError, match="not found"):
        load_audio(tmp_path / "missing.flac")


def test_write_audio_is_atomic_and_never_clips(tmp_path):
    path = tmp_path / "out.wav"
    write_audio(path, np.array([0.0, 2.0, -1.0], np.float32), 16000, subtype="FLOAT")
    data, _ = sf.read(path)
    assert np.max(np.abs(data)) == pytest.approx(1.0)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_float_wav_bytes_depend_only_on_the_samples(tmp_path):
    """libsndfile stamps the time into a float WAV's PEAK chunk; DVC would see every re-run as new data."""
    import time

    audio = np.sin(np.linspace(0, 200, 16000)).astype(np.float32) * 0.5
    write_audio(tmp_path / "a.wav", audio, 16000, subtype="FLOAT")  # as the resample stage writes
    time.sleep(1.1)  # the stamp has one-second resolution
    write_audio(tmp_path / "b.wav", audio, 16000, subtype="FLOAT")
    first, second = (tmp_path / "a.wav").read_bytes(), (tmp_path / "b.wav").read_bytes()
    assert b"PEAK" in first[:200] and first == second
    back, rate = load_audio(tmp_path / "b.wav")
    assert rate == 16000 and np.array_equal(back, audio)
