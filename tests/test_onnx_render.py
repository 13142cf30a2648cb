"""Rendering on onnxruntime without torch: the export_onnx stage's graphs against the torch models they
came from, the staleness check, and `performer render --backend`."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.errors import PipelineError
from pipeline.inference.models import PerformerModels, load_folder
from pipeline.inference.onnx_export import export_onnx
from pipeline.inference.runtime.onnx_models import OnnxModels, onnx_status
from pipeline.inference.runtime.render import frame_timeline, predict_timing, render_score, synthesize_mel, vocode
from pipeline.models.alignment import to_timeline
from pipeline.models.calibration import Calibration
from pipeline.models.persistence import save_model
from pipeline.models.source_filter import SourceFilterVocoder
from pipeline.models.synthesis import SynthesisModel
from pipeline.models.vocoders import build_vocoder
from tests._params import MEL
from tests.test_cli import assert_one_line_error
from tests.test_inference import NAMES, SMALL_SYNTHESIS, SMALL_VOCODER, long_score, performer_cli, small_alignment
from tests.test_scores import write_midi
from tests.test_source_filter import SMALL as SMALL_SOURCE_FILTER

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def make_models(vocoder: str = "source_filter", seed: int = 0) -> PerformerModels:
    """Small models with weights that are not the priors (timing off the constant tempo, a mel that
    depends on the performer, a vocoder whose filter is not flat), and level offsets."""
    torch.manual_seed(seed)
    synthesis = SynthesisModel(n_performers=2, performer_names=NAMES, **SMALL_SYNTHESIS).eval()
    synthesis.calibration = Calibration(level_offset_db=2.5, performer_levels_db=(-20.0, -10.0))
    if vocoder == "source_filter":
        voc = build_vocoder("source_filter", **SMALL_SOURCE_FILTER).eval()
        voc.calibration = Calibration(level_offset_db=0.5)
        torch.nn.init.normal_(voc.head.weight, std=0.05)
    else:
        voc = build_vocoder("hifigan", **SMALL_VOCODER, excitation=vocoder == "hifigan+excitation").eval()
    return PerformerModels(small_alignment(seed=seed + 1), synthesis, voc, MEL)


def write_and_export(folder: Path, models: PerformerModels) -> Path:
    save_model(folder / "alignment" / "model.pt", models.alignment)
    save_model(folder / "synthesis" / "model.pt", models.synthesis)
    save_model(folder / "hifigan" / "model.pt", models.vocoder)
    export_onnx(folder, folder / "onnx", load_folder(folder, MEL))
    return folder / "onnx"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, PerformerModels, OnnxModels]:
    folder = tmp_path_factory.mktemp("models")
    models = make_models()
    onnx = write_and_export(folder, models)
    return folder, load_folder(folder, MEL), OnnxModels(onnx)


def test_frame_timeline_is_to_timeline_in_numpy():
    """Render's numpy timeline gives the very frames of the models' torch one: chords at their mean onset,
    a running maximum in score order, >= 0, offsets one frame at least."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 60))
        ticks = np.sort(rng.choice(np.arange(0, 40), n))  # repeated ticks: chords
        onset = (rng.normal(0, 1, n).cumsum() * 7.3 + rng.normal(0, 3, n)).astype(np.float32)
        onset[rng.random(n) < 0.2] -= 20.0  # some predictions before the previous chord, some below 0
        duration = rng.uniform(-1, 30, n).astype(np.float32)
        on, off = frame_timeline(onset, duration, ticks)
        pred = torch.from_numpy(np.stack([onset, duration], -1))[None]
        want_on, want_off = to_timeline(pred, torch.from_numpy(ticks)[None], torch.ones(1, n, dtype=torch.bool))
        np.testing.assert_array_equal(on, want_on[0].numpy())
        np.testing.assert_array_equal(off, want_off[0].numpy())


def test_each_graph_computes_its_model(exported):
    """Given the same inputs, every graph gives its torch model's numbers: timing (onsets within one
    frame: float rounding can cross a frame's half), the mel of the same timeline and the waveform of the
    same mel, for one performer and for a blend."""
    _, models, onnx = exported
    notes = long_score(60)
    for performer, weights in ((1, None), (0, np.array([0.3, 0.7], np.float32))):
        on, off = predict_timing(models.alignment, notes, performer, 100.0, performer_weights=weights)
        on2, off2 = predict_timing(onnx.alignment, notes, performer, 100.0, performer_weights=weights)
        assert np.abs(on - on2).max() <= 1 and np.abs(off - off2).max() <= 1
        assert np.mean(on == on2) > 0.95
        frames = int(off.max()) + 20
        mel = synthesize_mel(models.synthesis, notes, on, off, performer, frames, 96, 16, performer_weights=weights)
        mel2 = synthesize_mel(onnx.synthesis, notes, on, off, performer, frames, 96, 16, performer_weights=weights)
        assert mel.std() > 0.05  # not a constant: the comparison means something
        np.testing.assert_allclose(mel2, mel, atol=1e-4)
    source = models.vocoder.make_source(notes.pitch, on, off, frames, MEL.sample_rate)
    np.testing.assert_array_equal(onnx.vocoder.make_source(notes.pitch, on, off, frames, MEL.sample_rate), source)
    audio = vocode(models.vocoder, mel, source=source)
    audio2 = vocode(onnx.vocoder, mel, source=source)
    assert audio.std() > 1e-3 and len(audio2) == frames * MEL.hop_length
    np.testing.assert_allclose(audio2, audio, atol=1e-4 * np.abs(audio).max())


def test_numpy_transforms_are_the_vocoders(exported):
    _, models, onnx = exported
    rng = np.random.default_rng(1)
    signal = rng.normal(0, 0.1, 40 * MEL.hop_length).astype(np.float32)
    assert isinstance(models.vocoder, SourceFilterVocoder)
    want = models.vocoder._stft(torch.from_numpy(signal)[None])[0].numpy()
    got = onnx.vocoder.stft(signal)
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())
    back = models.vocoder._istft(torch.from_numpy(want)[None])[0].numpy()
    np.testing.assert_allclose(onnx.vocoder.istft(want), back, atol=1e-5)
    np.testing.assert_allclose(
        back[2 * MEL.hop_length : -2 * MEL.hop_length], signal[2 * MEL.hop_length : -2 * MEL.hop_length], atol=1e-4
    )


@pytest.mark.parametrize("vocoder", ["hifigan", "hifigan+excitation"])
def test_hifigan_vocoders_export_too(tmp_path, vocoder):
    models = make_models(vocoder)
    onnx = OnnxModels(write_and_export(tmp_path, models))
    loaded = load_folder(tmp_path, MEL)
    mel = np.random.default_rng(2).normal(-4, 1, (MEL.n_mels, 70)).astype(np.float32)
    notes = long_score(8)
    on, off = predict_timing(loaded.alignment, notes, 0, 100.0)
    source = loaded.vocoder.make_source(notes.pitch, on, np.minimum(off, 70), 70, MEL.sample_rate)
    assert (source is None) == (vocoder == "hifigan")
    audio = vocode(loaded.vocoder, mel, source=source)
    np.testing.assert_allclose(vocode(onnx.vocoder, mel, source=source), audio, atol=1e-4 * np.abs(audio).max())


def test_render_score_on_onnxruntime_matches_torch(exported):
    _, models, onnx = exported
    notes = long_score(40)
    for loudness in ("calibrated", "model"):
        a = render_score(models, notes, "ben", loudness=loudness)
        b = render_score(onnx, notes, "ben", loudness=loudness)
        assert len(a.audio) == len(b.audio) and b.performer == "ben"
        # these small models' timing lands on the same frames on both (a frame's half can be crossed by
        # float rounding in general: test_each_graph_computes_its_model), so the sound is equal too
        np.testing.assert_array_equal(b.onset_frame, a.onset_frame)
        np.testing.assert_array_equal(b.offset_frame, a.offset_frame)
        np.testing.assert_allclose(b.mel, a.mel, atol=1e-4)
        np.testing.assert_allclose(b.audio, a.audio, atol=1e-3 * np.abs(a.audio).max())
    assert onnx.level_offset_db == models.level_offset_db == 2.5
    assert onnx.synthesis.calibration == models.synthesis.calibration  # the performers' levels too
    assert onnx.vocoder.calibration.level_offset_db == 0.5
    assert onnx.performers == NAMES


def test_the_onnx_path_imports_no_torch(exported):
    """What `performer render` saves: importing every module of pipeline.inference.runtime and the render
    job, choosing the export and rendering with it, in a fresh process, never imports torch (nor pandas)."""
    folder, _, _ = exported
    code = (
        "import importlib, pkgutil, sys; from pathlib import Path; import numpy as np; "
        "import pipeline.inference.runtime as runtime; "
        "names = [m.name for m in pkgutil.iter_modules(runtime.__path__, 'pipeline.inference.runtime.')]; "
        "[importlib.import_module(name) for name in names]; "
        "from pipeline.render_job import choose_backend, load_bundle; "
        "from pipeline.inference.runtime.render import render_score; from pipeline.scores import NoteTable; "
        f"models = {str(folder)!r}; params = Path({str(REPO / 'params.yaml')!r}); "
        "onnx = choose_backend('auto', models, 'auto', params); assert onnx is not None; "
        "n = np.arange(12); notes = NoteTable(n * 24, n * 0 + 24, 60 + n, n * 0 + 80, n * 0, tempo_qpm=100.0); "
        "r = render_score(load_bundle(models, 'auto', params, 1, onnx), notes, 'ana'); assert r.audio.std() > 0; "
        "print(len(names), sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "5 []"  # blend, bundle, networks, onnx_models, render


def test_a_stale_or_missing_export_is_named(tmp_path):
    models = make_models()
    onnx = write_and_export(tmp_path, models)
    assert onnx_status(tmp_path, onnx) is None and onnx_status(tmp_path, onnx, MEL) is None
    assert "another mel recipe" in onnx_status(tmp_path, onnx, replace(MEL, clamp=MEL.clamp * 10))
    meta = json.loads((onnx / "render.json").read_text())
    assert (
        set(meta["sha256"]) == {"alignment", "synthesis", "hifigan"}
        and meta["synthesis"]["calibration"]["level_offset_db"] == 2.5
    )
    models.synthesis.calibration = Calibration(level_offset_db=3.0)  # the model trained or calibrated again
    save_model(tmp_path / "synthesis" / "model.pt", models.synthesis)
    assert "synthesis/model.pt changed since it was exported" in onnx_status(tmp_path, onnx)
    assert "no exported models here" in onnx_status(tmp_path, tmp_path / "nowhere")
    (onnx / "render.json").write_text("{")
    with pytest.raises(PipelineError, match=r"render\.json"):
        OnnxModels(onnx)


def test_the_runner_reads_what_the_exporter_writes():
    """onnx_models cannot import onnx_export (it imports torch): their shared constants are checked here."""
    from pipeline.inference import onnx_export
    from pipeline.inference.models import MODEL_NAMES
    from pipeline.inference.runtime import onnx_models

    assert onnx_models.FORMAT == onnx_export.FORMAT
    assert onnx_models.GRAPHS == onnx_export.GRAPHS
    assert onnx_models.MODEL_NAMES == MODEL_NAMES == tuple(onnx_export.GRAPHS)


def test_export_refuses_what_it_cannot_run(tmp_path):
    models = make_models()
    models.vocoder = SourceFilterVocoder(**SMALL_SOURCE_FILTER, phase_iterations=1)
    with pytest.raises(PipelineError, match="phase_iterations"):
        export_onnx(tmp_path, tmp_path / "onnx", models)
    assert not (tmp_path / "onnx").exists()


def test_export_bytes_repeat(tmp_path):
    """Same models, same graphs: the export stage's output hashes the same run after run."""
    models = make_models()
    first = write_and_export(tmp_path / "a", models)
    second = write_and_export(tmp_path / "b", models)
    for name in ("timing.onnx", "mel.onnx", "vocoder.onnx"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


@pytest.mark.slow
def test_render_command_backends(tmp_path):
    models = make_models()
    write_and_export(tmp_path, models)
    score, out = tmp_path / "tune.mid", tmp_path / "out.wav"
    write_midi(score, [(i * 0.5, 0.5, 60 + (i % 7), 80) for i in range(24)], tempo_bpm=100)
    waves = {}
    for backend in ("onnx", "torch", "auto"):
        result = performer_cli("render", score, "-o", out, "--models", tmp_path, "--backend", backend)
        assert result.returncode == 0, result.stderr
        assert "rendering with torch" not in result.stderr
        waves[backend] = sf.read(out)[0]
    assert np.array_equal(waves["auto"], waves["onnx"])  # auto takes a current export
    assert len(waves["onnx"]) == len(waves["torch"])
    assert np.abs(waves["onnx"] - waves["torch"]).max() < 0.02 * np.abs(waves["torch"]).max()

    models.synthesis.calibration = Calibration(level_offset_db=4.0)  # trained again: the export is stale
    save_model(tmp_path / "synthesis" / "model.pt", models.synthesis)
    stale = performer_cli("render", score, "-o", out, "--models", tmp_path)
    assert (
        stale.returncode == 0
        and "rendering with torch" in stale.stderr
        and "synthesis/model.pt changed" in stale.stderr
    )
    out.unlink()
    assert_one_line_error(
        performer_cli("render", score, "-o", out, "--models", tmp_path, "--backend", "onnx"),
        "cannot render with the ONNX export",
        "synthesis/model.pt changed",
    )
    assert_one_line_error(
        performer_cli("render", score, "-o", out, "--models", tmp_path, "--backend", "fast"),
        "--backend must be one of auto, onnx, torch",
    )
    assert not out.exists()
