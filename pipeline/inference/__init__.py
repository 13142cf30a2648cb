"""Inference: the three trained models (:mod:`pipeline.inference.models`, or their onnxruntime graphs:
:mod:`pipeline.inference.onnx_models`) and rendering a score with them in windows the size the models
were trained on (:mod:`pipeline.inference.render`).

The names below load on first use, so that importing the torch-free modules of this package
(render, onnx_models) does not import torch through :mod:`pipeline.inference.models`.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MODEL_NAMES": "pipeline.inference.models",
    "PerformerModels": "pipeline.inference.models",
    "load_folder": "pipeline.inference.models",
    "Rendering": "pipeline.inference.render",
    "crossfade_weights": "pipeline.inference.render",
    "predict_timing": "pipeline.inference.render",
    "render_score": "pipeline.inference.render",
    "synthesize_mel": "pipeline.inference.render",
    "vocode": "pipeline.inference.render",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline.inference' has no attribute {name!r}")
