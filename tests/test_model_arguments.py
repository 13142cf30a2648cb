"""Model blocks of params.yaml are typed by their constructors (pipeline.models.arguments)."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import pytest

from pipeline.config import load_params
from pipeline.errors import PipelineError
from pipeline.models.arguments import check_arguments
from pipeline.models.synthesis import SynthesisModel

REPO = Path(__file__).resolve().parents[1]
PARAM_FILES = ["params.yaml", "params/paper-violin.yaml", "params/paper-piano.yaml"]
STAGES = ["train_alignment", "train_synthesis", "train_performancenet", "train_hifigan_baseline", "train_hifigan"]


def _check(stage: str, params, **kwargs) -> None:
    importlib.import_module(f"stages.{stage}").check_params(params, **kwargs)


@pytest.mark.parametrize("param_file", PARAM_FILES)
@pytest.mark.parametrize("stage", STAGES)
def test_every_parameter_file_passes_every_training_stage_check(param_file, stage):
    params = load_params(REPO / param_file)
    _check(stage, params)
    if stage == "train_hifigan":
        _check(stage, params, variant="v2")


def _replace(params, group: str, **changes):
    return dataclasses.replace(params, **{group: dataclasses.replace(getattr(params, group), **changes)})


@pytest.mark.parametrize(
    ("stage", "group", "field", "block", "message"),
    [
        (
            "train_synthesis",
            "train_synthesis",
            "model",
            {"d_modle": 64},
            "train_synthesis.model.d_modle: not a setting",
        ),
        (
            "train_synthesis",
            "train_synthesis",
            "model",
            {"d_model": "64"},
            "train_synthesis.model.d_model: must be int",
        ),
        (
            "train_synthesis",
            "train_synthesis",
            "model",
            {"dropout": True},
            "train_synthesis.model.dropout: must be float",
        ),
        (
            "train_synthesis",
            "train_synthesis",
            "ablations",
            {"broken": {"note_wise_pe": "no"}},
            "train_synthesis.ablations.broken.note_wise_pe: must be bool",
        ),
        (
            "train_synthesis",
            "train_synthesis",
            "model",
            {"n_performers": 4},
            "train_synthesis.model.n_performers: set by the pipeline",
        ),
        (
            "train_synthesis",
            "train_synthesis",
            "model",
            {"sample_rate": 22050},
            "train_synthesis.model.sample_rate: set by the pipeline",
        ),
        (
            "train_synthesis",
            "train_synthesis",
            "model",
            {"performer_levels_db": [-20.0]},
            "train_synthesis.model.performer_levels_db: not a setting of SynthesisModel",
        ),
        ("train_alignment", "train_alignment", "model", {"layers": 2.5}, "train_alignment.model.layers: must be int"),
        ("train_alignment", "train_alignment", "model", {"frame_rate": 50.0}, "frame_rate: set by the pipeline"),
        (
            "train_performancenet",
            "train_performancenet",
            "model",
            {"channels": [64, "x"]},
            "train_performancenet.model.channels: must be Sequence[int]",
        ),
        ("train_hifigan", "train_hifigan", "generator", {"hop_length": 128}, "hop_length: set by the pipeline"),
        ("train_hifigan", "train_hifigan", "generator", {"chanels": 64}, "not a setting of SourceFilterVocoder"),
        (
            "train_hifigan_baseline",
            "train_hifigan_baseline",
            "generator",
            {"upsample_rates": 8},
            "train_hifigan_baseline.generator.upsample_rates: must be Sequence[int]",
        ),
    ],
)
def test_a_wrong_model_setting_is_one_error_naming_its_key(stage, group, field, block, message):
    params = _replace(load_params(REPO / "params.yaml"), group, **{field: block})
    with pytest.raises(PipelineError, match=re.escape(message)):
        _check(stage, params)


def test_the_paper_hifigan_group_is_checked_against_hifigan_not_the_default_vocoder():
    params = load_params(REPO / "params.yaml")
    assert params.train_hifigan_v2.vocoder == "hifigan"
    hifigan_only = _replace(params, "train_hifigan_v2", generator={"upsample_rates": [8, 8, 2, 2]})
    _check("train_hifigan", hifigan_only, variant="v2")  # a HiFi-GAN setting: fine for v2
    with pytest.raises(PipelineError, match=re.escape("train_hifigan.generator.upsample_rates: not a setting")):
        _check("train_hifigan", _replace(params, "train_hifigan", generator={"upsample_rates": [8, 8, 2, 2]}))


def test_tuples_of_fixed_length_and_optional_values_are_checked():
    def make(*, pair: tuple[int, int] = (1, 2), maybe: float | None = None) -> None: ...

    check_arguments(make, {"pair": [3, 4], "maybe": None}, "g")
    check_arguments(make, {"maybe": 1}, "g")  # an int is a float
    with pytest.raises(PipelineError, match=re.escape("g.pair: must be tuple[int, int]")):
        check_arguments(make, {"pair": [1, 2, 3]}, "g")
    with pytest.raises(PipelineError, match=re.escape("g.maybe: must be float | None")):
        check_arguments(make, {"maybe": "x"}, "g")


def test_the_constructor_defaults_are_the_only_defaults():
    # a block may be empty: the model is then the constructor's (no second copy of its defaults)
    check_arguments(SynthesisModel, {}, "train_synthesis.model")
