"""Models record their constructor arguments; a model file holds class, arguments, calibration, weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.errors import PipelineError
from pipeline.models.alignment import AlignmentModel
from pipeline.models.base import MODEL_CLASSES, Model
from pipeline.models.calibration import Calibration
from pipeline.models.hifigan import Generator
from pipeline.models.performancenet import PerformanceNet
from pipeline.models.persistence import load_any, load_model, save_model
from pipeline.models.pianoroll_hifigan import PianoRollHifigan
from pipeline.models.source_filter import SourceFilterVocoder
from pipeline.models.synthesis import SynthesisModel
from pipeline.models.vocoders import VOCODER_KINDS, load_vocoder
from tests._params import MEL
from tests.test_baselines import SMALL_PN
from tests.test_inference import NAMES, SMALL_ALIGNMENT, SMALL_SYNTHESIS, SMALL_VOCODER
from tests.test_onnx_render import SMALL_SOURCE_FILTER

FRAME_RATE = MEL.sample_rate / MEL.hop_length
RECIPE = dict(sample_rate=MEL.sample_rate, n_fft=MEL.n_fft, fmin=MEL.fmin, fmax=MEL.fmax)


def every_model_kind() -> dict[type, Model]:
    return {
        AlignmentModel: AlignmentModel(n_performers=2, performer_names=NAMES, frame_rate=FRAME_RATE, **SMALL_ALIGNMENT),
        SynthesisModel: SynthesisModel(
            n_performers=2, performer_names=NAMES, harmonic_prior=True, **RECIPE, **SMALL_SYNTHESIS
        ),
        Generator: Generator(**SMALL_VOCODER, excitation=True),
        SourceFilterVocoder: SourceFilterVocoder(**SMALL_SOURCE_FILTER),
        PerformanceNet: PerformanceNet(bins=65, **SMALL_PN),
        PianoRollHifigan: PianoRollHifigan(n_performers=2, generator=SMALL_VOCODER, performer_names=NAMES),
    }


def test_every_model_kind_round_trips_with_its_calibration(tmp_path):
    torch.manual_seed(0)
    models = every_model_kind()
    assert set(models) == {cls for name, cls in MODEL_CLASSES.items() if cls.__module__.startswith("pipeline.")}
    for i, (cls, model) in enumerate(models.items()):
        model.calibration = Calibration(level_offset_db=-3.25 + i, performer_levels_db=(-20.0, -12.5 - i))
        path = tmp_path / cls.__name__ / "model.pt"
        save_model(path, model)
        loaded = load_model(path, cls)
        assert type(loaded) is cls and not loaded.training
        assert loaded.calibration == model.calibration
        assert loaded.config() == model.config()
        theirs = loaded.state_dict()
        for key, value in model.state_dict().items():
            torch.testing.assert_close(theirs[key], value, rtol=0, atol=0)
        state = torch.load(path, weights_only=True)
        assert state["model"] == cls.__name__
        assert state["calibration"] == {"level_offset_db": -3.25 + i, "performer_levels_db": [-20.0, -12.5 - i]}
    assert type(load_vocoder(tmp_path / "SourceFilterVocoder" / "model.pt")) is SourceFilterVocoder
    assert set(VOCODER_KINDS.values()) == {Generator, SourceFilterVocoder}


def test_a_model_records_the_arguments_it_was_called_with():
    model = AlignmentModel(frame_rate=50.0, layers=1, d_model=16, attention_dim=8, ffn_dim=16, performer_names=("a",))
    assert model.hparams["layers"] == 1 and model.hparams["heads"] == 2  # given, and the signature's default
    assert model.config() == {**model.config(), "performer_names": ("a",), "frame_rate": 50.0}
    rebuilt = AlignmentModel(**model.config())
    assert rebuilt.config() == model.config()
    with pytest.raises(TypeError):
        model.hparams["layers"] = 2  # type: ignore[index]  (read-only: the record is the configuration)
    copy = model.config()
    copy["layers"] = 9
    assert model.hparams["layers"] == 1
    assert model.calibration == Calibration()  # measured after training, by run_training


def test_a_subclass_records_its_own_call_once():
    class Wide(Model):
        def __init__(self, width: int = 4, depth: int = 1) -> None:
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))

    class Wider(Wide):
        def __init__(self, scale: int = 2) -> None:
            super().__init__(width=4 * scale, depth=3)

    assert Wider(scale=3).config() == {"scale": 3}
    assert Wide(depth=2).config() == {"width": 4, "depth": 2}
    with pytest.raises(TypeError, match="takes \\*kwargs: a model's settings must be named"):

        class Loose(Model):
            def __init__(self, **kwargs) -> None:
                super().__init__()

    assert "Loose" not in MODEL_CLASSES


def test_a_file_of_another_model_or_no_model_is_refused(tmp_path):
    torch.manual_seed(0)
    save_model(tmp_path / "vocoder.pt", Generator(**SMALL_VOCODER))
    with pytest.raises(PipelineError, match="holds a Generator, not a SynthesisModel"):
        load_model(tmp_path / "vocoder.pt", SynthesisModel)
    assert isinstance(load_any(tmp_path / "vocoder.pt", (Generator, SourceFilterVocoder)), Generator)
    torch.save({"hparams": {}, "state_dict": {}}, tmp_path / "bare.pt")
    with pytest.raises(PipelineError, match="not a model file"):
        load_model(tmp_path / "bare.pt", Generator)
    state = torch.load(tmp_path / "vocoder.pt", weights_only=True)
    torch.save({**state, "calibration": {"gain_db": 1.0}}, tmp_path / "odd.pt")
    with pytest.raises(PipelineError, match="unknown calibration values: gain_db"):
        load_model(tmp_path / "odd.pt", Generator)
    torch.save({**state, "hparams": {**state["hparams"], "width": 3}}, tmp_path / "foreign.pt")
    with pytest.raises(PipelineError, match="cannot rebuild the Generator"):
        load_model(tmp_path / "foreign.pt", Generator)
