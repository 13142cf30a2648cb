"""Score -> audio through the three models: windowed timing, stitched mel, chunked vocoder, `performer render`."""

from __future__ import annotations

import subprocess
import sys
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from torch import nn

from pipeline.datasets.clips import collate_clips, cut_clip
from pipeline.errors import PipelineError
from pipeline.inference.models import PerformerModels
from pipeline.inference.runtime.render import crossfade_weights, predict_timing, render_score, synthesize_mel, vocode
from pipeline.models.alignment import AlignmentModel, alignment_inputs, to_timeline
from pipeline.models.calibration import Calibration
from pipeline.models.hifigan import Generator
from pipeline.models.persistence import save_model
from pipeline.models.synthesis import SynthesisModel, synthesis_inputs
from pipeline.models.tempo import tempo_centers, tempo_class
from pipeline.registry.loading import load_models
from pipeline.scores import NoteTable, midi_notes_and_times, performance_midi_performer, read_score
from tests._params import MEL
from tests.test_scores import write_midi

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ("ana", "ben")
SMALL_ALIGNMENT = dict(d_model=32, layers=1, heads=2, attention_dim=16, ffn_dim=32, dropout=0.0)
SMALL_SYNTHESIS = dict(
    d_model=32, encoder_layers=1, decoder_layers=1, heads=2, attention_dim=16, ffn_dim=32, dropout=0.0
)
SMALL_VOCODER = dict(upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),))
FRAME_RATE = MEL.sample_rate / MEL.hop_length


def long_score(n: int = 160, seed: int = 0) -> NoteTable:
    """``n`` chord slots of eighths and quarters, some with a second voice, some rests (24 ticks/quarter)."""
    rng = np.random.default_rng(seed)
    onset, duration, pitch = [], [], []
    t = 0
    for _ in range(n):
        step = int(rng.choice([12, 12, 24, 36]))
        pitch.append(int(rng.integers(60, 80)))
        onset.append(t)
        duration.append(step)
        if rng.random() < 0.25:  # a chord note
            pitch.append(pitch[-1] - 5)
            onset.append(t)
            duration.append(step * 2)
        t += step
    n_notes = len(onset)
    return NoteTable(
        np.array(onset),
        np.array(duration),
        np.array(pitch),
        np.full(n_notes, 80),
        np.zeros(n_notes, int),
        tempo_qpm=100.0,
        name="long",
    )


def small_alignment(seed: int | None = None) -> AlignmentModel:
    model = AlignmentModel(frame_rate=FRAME_RATE, n_performers=2, performer_names=NAMES, **SMALL_ALIGNMENT).eval()
    if seed is not None:  # a model whose timing is not the constant-tempo prior
        torch.manual_seed(seed)
        nn.init.normal_(model.head.weight, std=0.05)
        nn.init.normal_(model.head.bias, std=0.5)
    return model


def small_models(seed: int = 0) -> PerformerModels:
    torch.manual_seed(seed)
    synthesis = SynthesisModel(n_performers=2, performer_names=NAMES, **SMALL_SYNTHESIS).eval()
    vocoder = Generator(**SMALL_VOCODER).eval().remove_weight_norm()
    return PerformerModels(small_alignment(), synthesis, vocoder, MEL)


# ------------------------------------------------------------------------------------------ timing


def test_untrained_alignment_model_plays_constant_tempo_across_many_windows():
    """With a zero head the model is exactly the constant-tempo prior: stitching must not drift, and the
    class centre's frames are rescaled to the tempo asked for (not played at the centre, up to half a
    class away)."""
    notes = long_score()
    onset, offset = predict_timing(small_alignment(), notes, performer=1, tempo_qpm=100.0)
    assert tempo_centers()[tempo_class(100.0)] != 100.0  # the centre differs: over 40 s, by many frames
    frames_per_tick = FRAME_RATE * 60 / (100.0 * 24)
    assert notes.length_ticks * frames_per_tick / FRAME_RATE > 40  # several 5-second windows
    expected = notes.onset * frames_per_tick
    assert np.abs(onset - expected).max() <= 0.5 + 1e-6
    expected_length = np.maximum(1, np.round(notes.duration * frames_per_tick))
    assert np.abs((offset - onset) - expected_length).max() <= 1  # each end rounded to its frame


def test_trained_like_timing_is_a_valid_timeline():
    notes = long_score(seed=1)
    onset, offset = predict_timing(small_alignment(seed=3), notes, performer=0, tempo_qpm=130.0)
    assert onset[0] == 0
    order = np.argsort(notes.onset, kind="stable")
    assert np.all(np.diff(onset[order]) >= 0)  # monotone in score time
    for tick in np.unique(notes.onset):  # chords start together
        assert len(set(onset[notes.onset == tick])) == 1
    assert np.all(offset > onset)


def test_one_window_timing_equals_the_model_on_the_whole_clip():
    notes = long_score(n=8)
    model = small_alignment(seed=4)
    assert notes.length_ticks < 5.0 * 200 / 60 * 24  # within one 5-second window at 200 qpm
    onset, offset = predict_timing(model, notes, performer=1, tempo_qpm=200.0)
    item = {
        "mel": np.zeros((1, 1), np.float32),
        "pitch": notes.pitch,
        "velocity": notes.velocity,
        "score_onset": notes.onset,
        "score_duration": notes.duration,
        "onset_frame": notes.onset * 0,
        "offset_frame": notes.onset * 0 + 1,
        "target_onset": np.zeros(len(notes), np.float32),
        "target_duration": np.zeros(len(notes), np.float32),
        "performer_id": 1,
        "tempo_qpm": 200.0,
    }
    batch = collate_clips([item])
    with torch.no_grad():
        pred = model(**alignment_inputs(model, batch))
    pred[..., 0] -= pred[0, 0, 0]  # the stitched timeline starts at frame 0
    ref_on, ref_off = to_timeline(pred, batch["score_onset"], batch["note_mask"])
    assert np.abs(onset - ref_on[0].numpy()).max() <= 1
    assert np.abs((offset - onset) - (ref_off - ref_on)[0].numpy()).max() <= 1


# ------------------------------------------------------------------------------------------ mel


class PianoRollStub(nn.Module):
    """A context-free 'synthesis model': the piano roll scaled by (performer + 1), 128 bins."""

    hparams: ClassVar[dict] = {"n_mels": 128, "use_velocity": False}
    calibration: ClassVar[Calibration] = Calibration()

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(
        self, pitch, onset, duration, onset_frame, offset_frame, note_mask, performer, frame_mask, velocity=None
    ):
        batch, n_frames = frame_mask.shape
        frames = torch.arange(n_frames)
        sounding = (frames[None, None, :] >= onset_frame[..., None]) & (frames[None, None, :] < offset_frame[..., None])
        sounding &= note_mask[..., None]
        roll = torch.zeros(batch, 128, n_frames)
        roll.scatter_add_(1, pitch[..., None].expand(-1, -1, n_frames), sounding.float())
        return roll * (performer[:, None, None] + 1) + self.dummy


def test_windowed_mel_of_a_context_free_model_equals_one_pass():
    notes = long_score(n=120, seed=2)
    onset = (notes.onset * 0.9).astype(int)
    offset = onset + np.maximum(1, (notes.duration * 0.9).astype(int))
    n_frames = int(offset.max()) + 20
    assert n_frames > 3 * 312
    mel = synthesize_mel(
        PianoRollStub(), notes, onset, offset, performer=1, n_frames=n_frames, window=MEL.clip_frames, batch_size=3
    )
    expected = np.zeros((128, n_frames))
    for p, a, b in zip(notes.pitch, onset, offset):
        expected[p, a:b] += 2.0
    np.testing.assert_allclose(mel, expected, atol=1e-5)


def test_one_window_mel_equals_the_model_on_the_whole_clip():
    torch.manual_seed(0)
    model = SynthesisModel(n_performers=2, **SMALL_SYNTHESIS).eval()
    notes = long_score(n=20)
    onset = (notes.onset * 0.5).astype(int)
    offset = onset + np.maximum(1, (notes.duration * 0.5).astype(int))
    n_frames = int(offset.max()) + 10
    assert n_frames < 312
    mel = synthesize_mel(model, notes, onset, offset, performer=0, n_frames=n_frames, window=MEL.clip_frames)
    data = {
        "mel": np.zeros((80, n_frames), np.float32),
        "pitch": notes.pitch,
        "velocity": notes.velocity,
        "score_onset": notes.onset,
        "score_duration": notes.duration,
        "onset_frame": onset,
        "offset_frame": offset,
        "performer_id": 0,
    }
    batch = collate_clips([cut_clip(data, 0, n_frames)])
    with torch.no_grad():
        expected = model(**synthesis_inputs(model, batch))[0].numpy()
    np.testing.assert_allclose(mel, expected, atol=1e-5)


def test_crossfades_sum_to_one_over_an_overlap():
    out, into = crossfade_weights(100, 0, 32), crossfade_weights(100, 32, 0)
    np.testing.assert_allclose(out[-32:] + into[:32], 1.0, atol=1e-12)
    assert np.all(out[:-32] == 1) and np.all(np.diff(out[-32:]) < 0)


# ------------------------------------------------------------------------------------------ waveform


def test_vocoding_in_chunks_equals_one_pass():
    torch.manual_seed(0)
    vocoder = Generator(**SMALL_VOCODER).eval().remove_weight_norm()
    mel = np.random.default_rng(0).normal(-5, 2, size=(80, 300)).astype(np.float32)
    chunked = vocode(vocoder, mel, chunk_frames=64, context=32)
    with torch.no_grad():
        whole = vocoder(torch.from_numpy(mel)[None])[0, 0].numpy()
    assert chunked.shape == (300 * 256,)
    assert np.abs(whole).max() > 1e-4
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


# ------------------------------------------------------------------------------------------ all three


def test_render_score_length_and_errors():
    models = small_models()
    notes = long_score(n=30)
    result = render_score(models, notes, "ben", tempo_qpm=120.0, tail_seconds=0.5)
    assert result.mel.shape == (80, int(result.offset_frame.max()) + round(0.5 * FRAME_RATE))
    assert result.audio.shape == (result.mel.shape[1] * 256,)
    assert np.isfinite(result.audio).all() and np.abs(result.audio).max() <= 0.99 + 1e-6
    faster = render_score(models, notes, "ben", tempo_qpm=240.0)
    assert faster.seconds < 0.6 * result.seconds  # the tempo option changes the timing
    with pytest.raises(PipelineError, match=r"unknown performer 'zed'.*ana, ben"):
        render_score(models, notes, "zed")
    with pytest.raises(PipelineError, match="no notes"):
        render_score(models, notes.subset(np.array([], dtype=int)), "ana")


def write_models(folder, models: PerformerModels) -> None:
    save_model(folder / "alignment" / "model.pt", models.alignment)
    save_model(folder / "synthesis" / "model.pt", models.synthesis)
    vocoder = Generator(**SMALL_VOCODER)  # saved with weight norm, like the stage does
    save_model(folder / "hifigan" / "model.pt", vocoder)


def performer_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_render_command_midi_and_musicxml(tmp_path):
    from music21 import meter, note, stream, tempo

    models = tmp_path / "models"
    write_models(models, small_models())
    midi = tmp_path / "tune.mid"
    write_midi(midi, [(i * 0.5, 0.5, 60 + (i % 7), 80) for i in range(40)], tempo_bpm=100)
    part = stream.Part([tempo.MetronomeMark(number=80), meter.TimeSignature("4/4")])
    for i in range(24):
        part.append(note.Note(67 - (i % 5), quarterLength=1.0))
    xml = tmp_path / "tune.musicxml"
    stream.Score([part]).write("musicxml", fp=str(xml))

    for score, qpm, quarters in [(midi, 100, 20), (xml, 80, 24)]:
        wav, timing = tmp_path / f"{score.stem}{score.suffix}.wav", tmp_path / f"{score.suffix}.csv"
        result = performer_cli(
            "render",
            score,
            "-o",
            wav,
            "--models",
            models,
            "--performer",
            "ana",
            "--timing",
            timing,
            "--mel-plot",
            tmp_path / "mel.png",
            "--midi",
            tmp_path / "played.mid",
        )
        assert result.returncode == 0, result.stderr
        info = sf.info(wav)
        assert info.samplerate == 16000
        played = pd.read_csv(timing)
        # the untrained alignment model is the constant-tempo prior, rescaled from its tempo class's
        # centre to the score's own tempo
        np.testing.assert_allclose(
            played["onset"].iloc[-1], (quarters - (0.5 if qpm == 100 else 1)) * 60 / qpm, atol=0.02
        )
        assert info.duration == pytest.approx(played["offset"].max() + 0.5, abs=0.02)
        assert (tmp_path / "mel.png").stat().st_size > 10_000
        # the timing lines up with the score, and the MIDI file plays exactly that timing
        table = read_score(score)
        np.testing.assert_array_equal(played["note_id"], np.arange(len(table)))
        np.testing.assert_array_equal(played["pitch"], table.pitch)
        np.testing.assert_allclose(played["score_onset_beats"], table.onset / table.resolution)
        np.testing.assert_allclose(played["score_duration_beats"], table.duration / table.resolution)
        back, onset, offset = midi_notes_and_times(tmp_path / "played.mid")
        np.testing.assert_array_equal(back.pitch, played["pitch"])
        np.testing.assert_allclose(onset, played["onset"], atol=1e-3)
        np.testing.assert_allclose(offset, played["offset"], atol=1e-3)
        assert performance_midi_performer(tmp_path / "played.mid") == "ana"


@pytest.mark.slow
def test_render_command_errors_are_one_line_and_leave_nothing(tmp_path):
    from tests.test_cli import assert_one_line_error

    models = tmp_path / "models"
    write_models(models, small_models())
    empty, corrupt, good = tmp_path / "empty.mid", tmp_path / "corrupt.mid", tmp_path / "good.mid"
    write_midi(empty, [])
    corrupt.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    write_midi(good, [(i, 1, 60 + i, 90) for i in range(4)])
    out = tmp_path / "out.wav"
    assert_one_line_error(performer_cli("render", empty, "-o", out, "--models", models), "empty.mid", "no notes")
    assert_one_line_error(performer_cli("render", corrupt, "-o", out, "--models", models), "corrupt.mid")
    assert_one_line_error(
        performer_cli("render", good, "-o", out, "--models", models, "--performer", "zed"),
        "unknown performer 'zed'",
        "ana, ben",
    )
    assert_one_line_error(performer_cli("render", good, "-o", out, "--models", tmp_path / "nothing"), "nothing")
    assert_one_line_error(
        performer_cli("render", good, "-o", out, "--models", models, "--loudness", "loud"),
        "--loudness must be one of calibrated, performer, model, not 'loud'",
    )
    zero = performer_cli("render", good, "-o", out, "--models", models, "--threads", "0")
    assert zero.returncode != 0 and "--threads" in zero.stderr and "Traceback" not in zero.stderr
    assert not out.exists()


@pytest.mark.slow
def test_models_load_back_from_mlflow_by_run_uris_and_registry_alias(tmp_path, monkeypatch):
    import mlflow
    import mlflow.pytorch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("render-test")  # not an experiment id cached from another store
    models = small_models(seed=5)
    uris = []
    for name, module in zip(
        ("alignment", "synthesis", "hifigan"), (models.alignment, models.synthesis, models.vocoder)
    ):
        with mlflow.start_run():
            info = mlflow.pytorch.log_model(
                module, name=name, serialization_format="pickle", registered_model_name=f"deep-performer-{name}"
            )
        uris.append(info.model_uri)
        mlflow.MlflowClient().set_registered_model_alias(f"deep-performer-{name}", "champion", "1")
    notes = long_score(n=16)
    expected = render_score(models, notes, "ben").audio
    for source in [",".join(uris), "models:/deep-performer-{name}@champion", "models:/@champion"]:
        loaded = load_models(source, MEL)
        assert loaded.performers == NAMES
        np.testing.assert_allclose(render_score(loaded, notes, "ben").audio, expected, atol=1e-6)
    with pytest.raises(PipelineError, match="needs \\{name\\}"):
        load_models("models:/deep-performer-synthesis@champion", MEL)
