"""The project's own settings, for tests: params.yaml is the only place a value lives, so tests take
the mel recipe (and any other group) from it instead of spelling numbers (``replace`` for variants)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pipeline.config import TrainConfig, load_params

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
MEL = PARAMS.mel


def train_config(**changes) -> TrainConfig:
    """The alignment stage's training-loop settings with ``changes`` (tiny runs in tests)."""
    return replace(PARAMS.train_alignment.train, **changes)
