import numpy as np
import pytest

from pipeline.rendering import Instrument, Performance, apply_eq, render


def f0(x, sr):
    """Dominant frequency via the spectrum, refined to sub-bin accuracy."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=8 * len(x)))
    return np.fft.rfftfreq(8 * len(x), 1 / sr)[np.argmax(spectrum)]


def one_note(pitch=69, seconds=1.0, **curves):
    return Performance(np.array([0.1]), np.array([0.1 + seconds]), np.array([pitch]), np.array([100]), **curves)


def test_a_single_note_sounds_at_its_pitch_and_ends_after_the_tail():
    audio = render(one_note(), Instrument("FluidR3_GM.sf2", program=0, reverb_send=0), 16000, tail=0.5)
    assert audio.shape == (int(1.6 * 16000), 2)
    mono = audio.mean(axis=1)
    assert np.max(np.abs(mono[:1000])) < 1e-4  # silent before the onset at 0.1 s
    assert abs(f0(mono[3200:12800], 16000) - 440.0) < 3.0


def test_pitch_bend_shifts_the_note_by_the_requested_cents():
    bend = [np.full(300, 100.0)]  # +100 cents for the whole note
    audio = render(one_note(bend_cents=bend), Instrument("FluidR3_GM.sf2", program=0, reverb_send=0), 16000)
    assert abs(f0(audio.mean(axis=1)[3200:12800], 16000) - 466.16) < 4.0


def test_expression_controls_loudness():
    inst = Instrument("FluidR3_GM.sf2", program=40, reverb_send=0)
    loud = render(one_note(expression=[np.full(300, 127.0)]), inst, 16000)
    soft = render(one_note(expression=[np.full(300, 40.0)]), inst, 16000)
    rms = lambda a: np.sqrt(np.mean(a[4000:16000] ** 2))  # noqa: E731
    assert rms(soft) < 0.5 * rms(loud)


def test_polyphony_gets_one_channel_per_note_so_bends_do_not_leak():
    perf = Performance(
        np.array([0.0, 0.0]),
        np.array([1.0, 1.0]),
        np.array([60, 67]),
        np.array([90, 90]),
        bend_cents=[np.full(300, 0.0), np.full(300, 100.0)],
    )
    from pipeline.rendering import _assign_channels

    channels = _assign_channels(perf)
    assert channels[0] != channels[1]
    audio = render(perf, Instrument("FluidR3_GM.sf2", program=0, reverb_send=0), 16000).mean(axis=1)
    spectrum = np.abs(np.fft.rfft(audio[4000:12000] * np.hanning(8000)))
    freqs = np.fft.rfftfreq(8000, 1 / 16000)
    peak_c4 = spectrum[(freqs > 255) & (freqs < 268)].max()  # C4 unbent (261.6 Hz)
    assert peak_c4 > 0.2 * spectrum.max()


@pytest.mark.parametrize("gain", [6.0, -6.0])
def test_high_shelf_changes_treble_not_bass(gain):
    sr = 16000
    t = np.arange(sr) / sr
    x = (np.sin(2 * np.pi * 100 * t) + np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    y = apply_eq(x, sr, 0.0, gain)
    amp = lambda s, f: np.abs(np.fft.rfft(s))[f]  # noqa: E731  (1-second signal: bin = Hz)
    assert amp(y, 100) == pytest.approx(amp(x, 100), rel=0.05)
    assert 20 * np.log10(amp(y, 6000) / amp(x, 6000)) == pytest.approx(gain, abs=1.0)


RENDER_HASH = """
import ctypes, hashlib, sys
import numpy as np
for _ in range(int(sys.argv[1])):
    ctypes.CDLL("libc.so.6").rand()  # what other libraries may do before the first synth of a process
from pipeline.rendering import Instrument, Performance, render
perf = Performance(np.array([0.0, 0.5]), np.array([0.4, 1.0]), np.array([60, 67]), np.array([80, 80]))
audio = render(perf, Instrument(), 16000, tail=0.5)
print(hashlib.md5(audio.tobytes()).hexdigest(), float(np.abs(audio).max()))
"""


def test_a_render_is_the_same_bytes_whatever_the_process_did_before():
    """FluidSynth's 16-bit output dithers with noise drawn from the C library's rand() state when a
    process makes its first synth: renders are read as floats, so the bytes do not depend on it."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    runs = [
        subprocess.run(
            [sys.executable, "-c", RENDER_HASH, str(n)], capture_output=True, text=True, check=True, cwd=root
        )
        for n in (0, 7)
    ]
    (first, peak), (second, _) = (run.stdout.split()[-2:] for run in runs)
    assert first == second and float(peak) > 0.01


def test_the_rendering_is_not_quantised_to_16_bits():
    audio = render(one_note(seconds=0.5), Instrument(reverb_send=0), 16000, tail=0.2)
    sounding = audio[np.abs(audio) > 1e-3]
    assert len(sounding) > 1000
    assert np.mean(np.abs(sounding * 32768 - np.round(sounding * 32768)) > 1e-3) > 0.5
