"""Performer blends at render time (`--performer aurora:0.7,bruno:0.3`): the spec, the models' blended
embeddings, the render (timing and timbre both mixed), the composite pyfunc and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.datasets.clips import collate_clips, cut_clip
from pipeline.errors import PipelineError
from pipeline.inference.models import PerformerModels
from pipeline.inference.runtime.blend import parse_performers
from pipeline.inference.runtime.render import predict_timing, render_score, synthesize_mel
from pipeline.models.alignment import AlignmentModel, alignment_inputs
from pipeline.models.hifigan import Generator
from pipeline.models.performer_blend import performer_vectors
from pipeline.models.synthesis import SynthesisModel, synthesis_inputs
from tests._params import MEL
from tests.test_inference import (
    FRAME_RATE,
    NAMES,
    SMALL_SYNTHESIS,
    SMALL_VOCODER,
    long_score,
    performer_cli,
    small_alignment,
    small_models,
    write_models,
)
from tests.test_scores import write_midi

pytestmark = pytest.mark.usefixtures("one_thread")

KNOWN = "ana, ben"


def timed_models(seed: int = 0) -> PerformerModels:
    """The small models of tests/test_inference.py with an alignment head that is not the
    constant-tempo prior, so the performer embedding changes the timing too."""
    models = small_models(seed)
    models.alignment = small_alignment(seed=3)
    return models


# ------------------------------------------------------------------------------------------ the spec


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("ana", {"ana": 1.0}),
        ("ana:0.7,ben:0.3", {"ana": 0.7, "ben": 0.3}),
        (" ana : 3 , ben:1 ", {"ana": 0.75, "ben": 0.25}),
        ("ana:2", {"ana": 1.0}),
        ("ana,ben", {"ana": 0.5, "ben": 0.5}),  # a name alone weighs 1
        ("ana:1,ben:0", {"ana": 1.0, "ben": 0.0}),
        ("ben:1e-3,ana:3e-3", {"ben": 0.25, "ana": 0.75}),
        ({"ana": 2, "ben": 6.0}, {"ana": 0.25, "ben": 0.75}),
        ({"ana": np.float32(1.0)}, {"ana": 1.0}),
    ],
)
def test_specs_parse_to_normalised_weights_in_order(spec, expected):
    blend = parse_performers(spec, KNOWN)
    assert list(blend) == list(expected)
    assert blend == pytest.approx(expected, abs=1e-12)
    assert sum(blend.values()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty performer"),
        ("   ", "empty performer"),
        ("ana,,ben", "has an empty name"),
        (",ana", "has an empty name"),
        (":0.5", "has an empty name"),
        ("ana:", "weight '', not a number"),
        ("ana:x,ben:1", "weight 'x', not a number"),
        ("ana:0.5:1", "'ana:0.5:1' is not NAME:WEIGHT"),
        ("ana:nan", "weight nan: weights must be finite and >= 0"),
        ("ana:inf,ben:1", "weight inf: weights must be finite and >= 0"),
        ("ana:-0.1,ben:1", "weight -0.1: weights must be finite and >= 0"),
        ("ana:0,ben:0", "weights are all 0"),
        ("ana:0.5,ana:0.5", "performer 'ana' is given twice"),
        ("ana:0.5, ana", "performer 'ana' is given twice"),
        ({}, "empty performer blend"),
        ({"ana": "x"}, "weight 'x', not a number"),
        ({"ana": True}, "weight True, not a number"),
        ({"ana": float("nan")}, "weights must be finite"),
        ({"ana": 0.0}, "weights are all 0"),
        (3, "not int"),
    ],
)
def test_bad_specs_are_one_line_errors_naming_the_fault_and_the_performers(spec, message):
    with pytest.raises(PipelineError) as caught:
        parse_performers(spec, KNOWN)
    text = str(caught.value)
    assert "\n" not in text
    assert message in text
    assert text.endswith("(these models know: ana, ben)")


def test_the_models_resolve_blends_to_their_ids_and_reject_unknown_names():
    models = small_models()
    blend = models.performer_blend("ben:0.25,ana:0.75")
    assert blend.names == ("ben", "ana") and blend.ids == (1, 0) and blend.weights == (0.25, 0.75)
    assert blend.single is None and blend.main_id == 0 and str(blend) == "ben:0.25,ana:0.75"
    np.testing.assert_array_equal(blend.vector(3), np.array([0.75, 0.25, 0.0], np.float32))
    one = models.performer_blend("ben:1,ana:0")
    assert one.single == 1 and one.main_id == 1 and str(one) == "ben:1,ana:0"
    assert str(models.performer_blend("ana")) == "ana" and models.performer_blend("ana").single == 0
    assert models.performer_blend({"ana": 1, "ben": 1}).weights == (0.5, 0.5)
    with pytest.raises(PipelineError, match=r"unknown performer 'zed' \(these models know: ana, ben\)"):
        models.performer_blend("ana:0.5,zed:0.5")
    with pytest.raises(PipelineError, match=r"unknown performer '0'"):
        models.performer_blend("0:0.5,1:0.5")  # ids only for models without names


def test_models_without_performer_names_keep_their_digit_ids():
    alignment = AlignmentModel(frame_rate=FRAME_RATE, n_performers=3, d_model=32, layers=1, heads=2, attention_dim=16)
    synthesis = SynthesisModel(n_performers=3, **SMALL_SYNTHESIS)
    models = PerformerModels(alignment.eval(), synthesis.eval(), Generator(**SMALL_VOCODER).eval(), MEL)
    assert models.performer_id("2") == 2
    blend = models.performer_blend("0:0.5,2:0.5")
    assert blend.ids == (0, 2) and blend.weights == (0.5, 0.5)
    with pytest.raises(PipelineError, match=r"performer '00' is given twice.*0 \.\. 2"):
        models.performer_blend("0,00")
    with pytest.raises(PipelineError, match=r"unknown performer '3' \(these models know: 0 \.\. 2\)"):
        models.performer_blend("0:1,3:1")


# ------------------------------------------------------------------------------------------ the models


def test_one_hot_weights_give_exactly_the_looked_up_embedding():
    torch.manual_seed(0)
    table = torch.nn.Embedding(4, 16)
    ids = torch.tensor([2, 0, 3])
    one_hot = torch.nn.functional.one_hot(ids, 4).float()
    assert torch.equal(performer_vectors(table, ids, one_hot), table(ids))
    assert torch.equal(performer_vectors(table, ids, None), table(ids))
    half = torch.tensor([[0.5, 0.5, 0.0, 0.0]] * 3)
    torch.testing.assert_close(
        performer_vectors(table, ids, half), (table.weight[0] + table.weight[1]).expand(3, -1) / 2
    )
    with pytest.raises(ValueError, match="performer weights must be"):
        performer_vectors(table, ids, torch.ones(3, 5))


def _alignment_batch(notes, performer: int) -> dict[str, torch.Tensor]:
    item = {
        "mel": np.zeros((1, 1), np.float32),
        "pitch": notes.pitch,
        "velocity": notes.velocity,
        "score_onset": notes.onset,
        "score_duration": notes.duration,
        "onset_frame": np.zeros(len(notes), np.int64),
        "offset_frame": np.ones(len(notes), np.int64),
        "target_onset": np.zeros(len(notes), np.float32),
        "target_duration": np.zeros(len(notes), np.float32),
        "performer_id": np.int64(performer),
        "tempo_qpm": np.float32(110.0),
    }
    return collate_clips([item])


def _synthesis_batch(notes, performer: int) -> dict[str, torch.Tensor]:
    n = len(notes)
    data = {
        "mel": np.zeros((80, 200), np.float32),
        "pitch": notes.pitch,
        "velocity": notes.velocity,
        "score_onset": notes.onset,
        "score_duration": notes.duration,
        "onset_frame": np.arange(n) * 8,
        "offset_frame": np.arange(n) * 8 + 12,
        "performer_id": np.int64(performer),
    }
    return collate_clips([cut_clip(data, 0, 200)])


@torch.inference_mode()
def test_both_models_play_one_hot_weights_exactly_and_blends_differently():
    notes = long_score(n=20)
    alignment = small_alignment(seed=3)
    synthesis = small_models().synthesis
    for model, make, adapter in [
        (alignment, _alignment_batch, alignment_inputs),
        (synthesis, _synthesis_batch, synthesis_inputs),
    ]:
        batch = make(notes, 1)
        assert "performer_weights" not in adapter(model, batch)  # training batches: the call of before
        plain = model(**adapter(model, batch))
        one_hot = model(**adapter(model, {**batch, "performer_weights": torch.tensor([[0.0, 1.0]])}))
        assert torch.equal(one_hot, plain)
        other = model(**adapter(model, make(notes, 0)))
        mixed = model(**adapter(model, {**batch, "performer_weights": torch.tensor([[0.5, 0.5]])}))
        assert not torch.equal(mixed, plain) and not torch.equal(mixed, other)


@torch.inference_mode()
def test_the_ablation_without_performer_embedding_ignores_the_blend():
    torch.manual_seed(0)
    model = SynthesisModel(n_performers=2, performer_embedding=False, **SMALL_SYNTHESIS).eval()
    batch = _synthesis_batch(long_score(n=20), 1)
    plain = model(**synthesis_inputs(model, batch))
    mixed = model(**synthesis_inputs(model, {**batch, "performer_weights": torch.tensor([[0.5, 0.5]])}))
    assert torch.equal(mixed, plain)


# ------------------------------------------------------------------------------------------ rendering


def test_a_one_hot_blend_renders_exactly_the_single_performer():
    models = timed_models()
    notes = long_score(n=40)
    single = render_score(models, notes, "ben", tempo_qpm=110.0)
    assert single.performer == "ben"
    for spec in ["ben:1,ana:0", "ana:0,ben:0.3", {"ben": 1.0, "ana": 0.0}]:
        blend = render_score(models, notes, spec, tempo_qpm=110.0)
        assert np.array_equal(blend.onset_frame, single.onset_frame)
        assert np.array_equal(blend.offset_frame, single.offset_frame)
        assert np.array_equal(blend.mel, single.mel)
        assert np.array_equal(blend.audio, single.audio)
    assert render_score(models, notes, "ana:0,ben:0.3").performer == "ana:0,ben:1"


def test_one_hot_weights_through_the_windowed_steps_equal_the_performer_id():
    """The weights path of the render steps (windows, batches) is exact too, not only the lookup."""
    models = timed_models()
    notes = long_score(n=80)
    one_hot = np.array([0.0, 1.0], np.float32)
    onset, offset = predict_timing(models.alignment, notes, 1, 100.0)
    onset_w, offset_w = predict_timing(models.alignment, notes, 0, 100.0, performer_weights=one_hot)
    assert np.array_equal(onset_w, onset) and np.array_equal(offset_w, offset)
    n_frames = int(offset.max()) + 10
    assert n_frames > MEL.clip_frames  # several cross-faded windows
    mel = synthesize_mel(models.synthesis, notes, onset, offset, 1, n_frames, window=MEL.clip_frames)
    mel_w = synthesize_mel(
        models.synthesis, notes, onset, offset, 0, n_frames, window=MEL.clip_frames, performer_weights=one_hot
    )
    assert np.array_equal(mel_w, mel)


def test_an_even_blend_differs_from_both_performers_in_timing_and_sound():
    models = timed_models()
    notes = long_score(n=40)
    ana, ben = (render_score(models, notes, name, tempo_qpm=110.0) for name in NAMES)
    mixed = render_score(models, notes, "ana:0.5,ben:0.5", tempo_qpm=110.0)
    assert mixed.performer == "ana:0.5,ben:0.5"
    assert np.isfinite(mixed.audio).all()
    for single in (ana, ben):
        assert not np.array_equal(mixed.onset_frame, single.onset_frame)
        assert not np.array_equal(mixed.mel, single.mel)
        assert not np.array_equal(mixed.audio, single.audio)
    # the same blend however it is spelled
    again = render_score(models, notes, {"ben": 2, "ana": 2}, tempo_qpm=110.0)
    assert np.array_equal(again.audio, mixed.audio) and np.array_equal(again.onset_frame, mixed.onset_frame)


def test_render_reports_bad_blends_as_pipeline_errors():
    models = small_models()
    notes = long_score(n=8)
    with pytest.raises(PipelineError, match=r"weight -1: weights must be finite and >= 0 \(these models know: ana"):
        render_score(models, notes, "ana:-1,ben:1")
    with pytest.raises(PipelineError, match=r"unknown performer 'zed'.*ana, ben"):
        render_score(models, notes, "ana:1,zed:1")


# ------------------------------------------------------------------------------------------ serving, CLI


def test_the_composite_pyfunc_accepts_a_blend(tmp_path):
    from mlflow.exceptions import MlflowException

    from pipeline.registry.serving import DeepPerformerModel, decode_audio

    models = small_models()
    midi = tmp_path / "tune.mid"
    write_midi(midi, [(i * 0.5, 0.5, 60 + (i % 5), 80) for i in range(12)], tempo_bpm=100)
    pyfunc = DeepPerformerModel()
    pyfunc.models = models
    rows = pyfunc.render_rows(pd.DataFrame({"score": [str(midi), str(midi)], "performer": ["ana:0.3,ben:0.7", "ben"]}))
    from pipeline.scores import read_score

    notes = read_score(midi)
    for row, spec in zip(rows, ["ana:0.3,ben:0.7", "ben"]):
        audio, rate = decode_audio(row["audio"])
        assert rate == MEL.sample_rate
        np.testing.assert_array_equal(audio, render_score(models, notes, spec).audio)
    assert not np.array_equal(decode_audio(rows[0]["audio"])[0], decode_audio(rows[1]["audio"])[0])
    with pytest.raises(MlflowException, match=r"performer 'ana' is given twice"):
        pyfunc.predict(None, pd.DataFrame({"score": [str(midi)], "performer": ["ana:1,ana:2"]}))


@pytest.mark.slow
def test_render_command_plays_a_blend_and_rejects_a_bad_one(tmp_path):
    from tests.test_cli import assert_one_line_error

    models = tmp_path / "models"
    write_models(models, small_models())
    midi, out = tmp_path / "tune.mid", tmp_path / "out.wav"
    write_midi(midi, [(i * 0.5, 0.5, 60 + (i % 7), 80) for i in range(16)], tempo_bpm=100)
    result = performer_cli("render", midi, "-o", out, "--models", models, "--performer", "ana:0.7,ben:0.3")
    assert result.returncode == 0, result.stderr
    assert "performer ana:0.7,ben:0.3" in result.stdout and out.is_file()
    out.unlink()
    assert_one_line_error(
        performer_cli("render", midi, "-o", out, "--models", models, "--performer", "ana:0.7,ben:x"),
        "performer 'ben' has weight 'x', not a number",
        "ana, ben",
    )
    assert not out.exists()
    help_text = performer_cli("render", "--help").stdout
    assert "aurora:0.7,bruno:0.3" in " ".join(help_text.split()).replace("│", "")
