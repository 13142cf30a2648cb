"""The source-filter vocoder with an inverse-STFT output (the CPU default), and the vocoder choice."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import VOCODERS
from pipeline.errors import PipelineError
from pipeline.inference.runtime.render import vocode
from pipeline.mel import LogMelSpectrogram
from pipeline.models.excitation import _partials, harmonic_excitation
from pipeline.models.hifigan import mel_l1_loss
from pipeline.models.persistence import save_model
from pipeline.models.source_filter import SourceFilterVocoder
from pipeline.models.stft_loss import multi_resolution_stft_loss
from pipeline.models.synthesis import SynthesisModel
from pipeline.models.vocoders import VOCODER_KINDS, build_vocoder, load_vocoder, vocoder_for_mel
from tests._params import MEL

REPO = Path(__file__).resolve().parents[1]
SR, HOP = MEL.sample_rate, MEL.hop_length
RECIPE = dict(
    in_channels=MEL.n_mels,
    sample_rate=MEL.sample_rate,
    n_fft=MEL.n_fft,
    hop_length=MEL.hop_length,
    fmin=MEL.fmin,
    fmax=MEL.fmax,
)  # what vocoder_for_mel passes from the mel params group
SMALL_ARCH = {"channels": 32, "layers": 2}
SMALL = {**RECIPE, **SMALL_ARCH}
pytestmark = pytest.mark.usefixtures("one_thread")


def peak_hz(signal: np.ndarray, pad: int = 16) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal)), n=pad * len(signal)))
    return float(np.argmax(spectrum) * SR / (pad * len(signal)))


def test_the_flat_excitation_is_every_partial_below_nyquist():
    phase = np.linspace(0.0, 60.0, 20001)
    for decay in (0.0, 1.0):  # the closed form (flat) and the loop agree with the plain sum
        reference = sum(np.sin(k * phase) / k**decay for k in range(1, 31))
        np.testing.assert_allclose(_partials(phase, 30, decay), reference, atol=1e-9)
    frames = 60
    flat = harmonic_excitation([57], [0], [frames], frames, HOP, SR, harmonics=0, amplitude=0.1, decay=0.0)
    spectrum = np.abs(np.fft.rfft(flat * np.hanning(len(flat))))
    freqs = np.fft.rfftfreq(len(flat), 1 / SR)
    partials = [spectrum[np.argmin(np.abs(freqs - 220.0 * k))] for k in range(1, 37)]  # 36 * 220 = 7920 < 8000
    assert min(partials) > 0.8 * max(partials)  # flat: every partial up to Nyquist, equally strong
    assert spectrum[freqs > 7990].max() < 0.01 * max(partials)  # and nothing above it


@pytest.mark.parametrize("frames", [1, 7, 33])
def test_the_vocoder_is_length_exact_for_any_frame_count(frames):
    torch.manual_seed(0)
    v = SourceFilterVocoder(**SMALL)
    mel = torch.randn(2, 80, frames) - 4
    source = torch.from_numpy(np.stack([v.make_source([60], [0], [frames], frames, SR)] * 2))
    assert source.shape == (2, 2, frames * HOP)
    assert v(mel, source).shape == (2, 1, frames * HOP)
    with pytest.raises(ValueError, match="excitation"):
        v(mel)
    with pytest.raises(ValueError, match="source must be"):
        v(mel, source[..., :-1])


def test_the_inverse_stft_inverts_the_stft_on_the_mels_frames():
    v = SourceFilterVocoder(**SMALL)
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (2, 50 * HOP)).astype(np.float32))
    spectrum = v._stft(x)
    assert spectrum.shape == (2, 513, 50)  # n samples <-> n // hop frames, as the mel
    torch.testing.assert_close(v._istft(spectrum), x, atol=1e-5, rtol=0)


def test_it_overfits_one_batch_with_the_notes_pitch_the_recordings_level_and_no_dc():
    """A 220 Hz tone with a little noise: 150 steps of the stage's losses fit its mel; the output has
    the note's fundamental, the target's level within 1 dB, no DC offset and no clipping."""
    torch.manual_seed(0)
    frames = 48
    t = np.arange(frames * HOP) / SR
    rng = np.random.default_rng(0)
    target = 0.3 * sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 8)) + 0.003 * rng.standard_normal(len(t))
    audio = torch.from_numpy(target.astype(np.float32))[None]
    v = SourceFilterVocoder(**SMALL)
    mel_of = LogMelSpectrogram(MEL)
    mel = mel_of(audio)
    source = torch.from_numpy(v.make_source([57], [0], [frames], frames, SR))[None]
    optimizer = torch.optim.AdamW(v.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        out = v(mel, source)
        loss = 45 * mel_l1_loss(audio, out, mel_of) + 15 * multi_resolution_stft_loss(audio, out)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * losses[0], losses[::15]
    out = v(mel, source)[0, 0].detach().numpy()
    assert mel_l1_loss(audio, torch.from_numpy(out)[None], mel_of).item() < 0.35
    assert abs(peak_hz(out[HOP:-HOP]) - 220.0) < 2.0
    level_db = 20 * np.log10(np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(target**2)))
    assert abs(level_db) < 1.0, level_db
    assert abs(out.mean()) < 1e-3 and np.abs(out).max() < 1.0


def test_chunked_vocoding_equals_one_pass_and_bad_input_is_a_one_line_error():
    torch.manual_seed(0)
    v = SourceFilterVocoder(**SMALL).eval()
    mel = np.random.default_rng(0).normal(-4, 1, (80, 130)).astype(np.float32)
    source = v.make_source([60, 67, 64], [0, 30, 70], [50, 90, 130], 130, SR)
    whole = v(torch.from_numpy(mel)[None], torch.from_numpy(source)[None])[0, 0].detach().numpy()
    chunked = vocode(v, mel, chunk_frames=24, context=32, source=source)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    # the same notes give the same bytes (the noise is a fixed sequence)
    np.testing.assert_array_equal(source, v.make_source([60, 67, 64], [0, 30, 70], [50, 90, 130], 130, SR))
    bad = mel.copy()
    bad[3, 40] = np.nan
    for wrong, message in ((bad, "NaN"), (mel[:79], r"mel of shape \(80, frames\)"), (mel[None], "mel of shape")):
        with pytest.raises(PipelineError, match=message) as info:
            vocode(v, wrong, source=source)
        assert "\n" not in str(info.value)
    with pytest.raises(PipelineError, match="excitation"):
        vocode(v, mel)
    with pytest.raises(PipelineError, match="0-127"):
        v.make_source([60, 128], [0, 0], [10, 10], 10, SR)
    with pytest.raises(PipelineError, match="0-127"):
        v.make_source([-1], [0], [10], 10, SR)


def test_every_vocoder_kind_round_trips_through_a_checkpoint(tmp_path):
    assert tuple(VOCODER_KINDS) == VOCODERS  # params validation knows exactly the vocoders built here
    torch.manual_seed(0)
    mel = torch.randn(1, 80, 9) - 4
    for kind, kwargs in (("source_filter", SMALL), ("hifigan", {"upsample_initial_channel": 16})):
        model = build_vocoder(kind, **kwargs)
        path = tmp_path / kind / "model.pt"
        save_model(path, model)
        loaded = load_vocoder(path)
        assert type(loaded) is type(model)
        source = None
        if kind == "source_filter":
            source = torch.from_numpy(model.make_source([60], [0], [9], 9, SR))[None]
        torch.testing.assert_close(loaded(mel, source), model.eval()(mel, source), atol=1e-5, rtol=1e-4)
    # a model file that holds no vocoder is refused, naming what it holds
    save_model(tmp_path / "synthesis.pt", SynthesisModel(n_performers=1, d_model=16, ffn_dim=16, attention_dim=16))
    with pytest.raises(PipelineError, match="holds a SynthesisModel, not a Generator or SourceFilterVocoder"):
        load_vocoder(tmp_path / "synthesis.pt")
    with pytest.raises(ValueError, match="unknown vocoder"):
        build_vocoder("wavenet")


def test_the_vocoder_takes_the_mel_recipe_from_the_mel_params():
    mel = replace(MEL, n_mels=64, hop_length=200, n_fft=800, win_length=800)
    v = vocoder_for_mel("source_filter", dict(SMALL_ARCH), mel)
    assert (v.hop_length, v.n_fft, v.config()["in_channels"]) == (200, 800, 64)
    with pytest.raises(PipelineError, match="mel params group"):
        vocoder_for_mel("source_filter", {"hop_length": 256}, mel)
    with pytest.raises(PipelineError, match="hop 256, the mel's hop is 200"):
        vocoder_for_mel("hifigan", {}, mel)
    assert vocoder_for_mel("hifigan", {"upsample_initial_channel": 16}, MEL).hop_length == 256


@pytest.mark.parametrize(
    "recipe",
    [
        (16000, 1024, 80, 0.0, 8000.0),
        (22050, 1024, 80, 0.0, 8000.0),
        (16000, 800, 64, 30.0, 7600.0),
        (44100, 2048, 128, 0.0, 22050.0),
    ],
)
def test_the_numpy_mel_filterbank_is_librosas_bit_for_bit(recipe):
    import librosa

    from pipeline.models.mel_filters import slaney_mel_basis

    sr, n_fft, n_mels, fmin, fmax = recipe
    expected = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm="slaney")
    np.testing.assert_array_equal(slaney_mel_basis(*recipe), expected)


def test_rendering_imports_neither_librosa_nor_muspy(tmp_path):
    """They cost seconds of every `performer render` (scipy.signal, numba; muspy imports torch's
    dataset machinery): the render path builds its vocoder and reads MIDI without them."""
    import subprocess
    import sys

    import mido

    midi = mido.MidiFile()
    midi.tracks.append(
        mido.MidiTrack([mido.Message("note_on", note=60, velocity=80), mido.Message("note_off", note=60, time=480)])
    )
    midi.save(tmp_path / "a.mid")
    code = (
        "import sys; from pipeline.models.source_filter import SourceFilterVocoder; from pipeline.scores import "
        f"read_score; SourceFilterVocoder(channels=8, layers=1, **{RECIPE!r}); "
        f"read_score({str(tmp_path / 'a.mid')!r}); "
        "import pipeline.inference.runtime.render; "
        "print(sorted(m for m in ('librosa', 'scipy.signal', 'numba', 'muspy', 'music21') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_vague_mels_are_blurred_and_noised_reproducibly():
    from pipeline.training.mel_augment import vague_mel

    mel = torch.from_numpy(np.random.default_rng(0).normal(-5, 2, (4, 80, 40)).astype(np.float32))
    assert torch.equal(vague_mel(mel, 0.0), mel)
    torch.manual_seed(3)
    once = vague_mel(mel, 1.0)
    torch.manual_seed(3)
    assert torch.equal(vague_mel(mel, 1.0), once)  # the global RNG decides: a resumed run draws the same
    assert once.shape == mel.shape and torch.isfinite(once).all()
    for i in range(4):  # every one blurred: its band-to-band changes shrink, its level stays
        assert once[i].diff(dim=0).abs().mean() < 0.8 * mel[i].diff(dim=0).abs().mean()
        assert abs(once[i].mean() - mel[i].mean()) < 0.2


def test_an_unknown_vocoder_variant_or_kind_is_a_one_line_error(tmp_path):
    from pipeline.config import load_params
    from stages.train_hifigan import run

    with pytest.raises(PipelineError, match="unknown vocoder variant 'v3'"):
        run(load_params(REPO / "params.yaml"), tmp_path, tmp_path, variant="v3")  # before any data is read
    bad = tmp_path / "params.yaml"
    bad.write_text((REPO / "params.yaml").read_text().replace("  vocoder: source_filter", "  vocoder: wavenet"))
    with pytest.raises(PipelineError, match="vocoder must be one of hifigan, source_filter, not 'wavenet'"):
        load_params(bad)
