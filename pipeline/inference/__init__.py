"""Inference: the three trained models (:mod:`pipeline.inference.models`) and rendering a score with
them in windows the size the models were trained on (:mod:`pipeline.inference.render`)."""

from pipeline.inference.models import MODEL_NAMES, PerformerModels, load_folder  # noqa: F401
from pipeline.inference.render import (  # noqa: F401
    Rendering,
    crossfade_weights,
    predict_timing,
    render_score,
    synthesize_mel,
    vocode,
)
