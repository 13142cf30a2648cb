"""The project's own settings, for tests: params.yaml is the only place a value lives, so tests take
the mel recipe (and any other group) from it instead of spelling numbers (``replace`` for variants)."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import load_params

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
MEL = PARAMS.mel
