"""The three models from wherever they are: a folder of the training stages' outputs or MLflow model
URIs (what ``performer render --models`` accepts). MLflow is imported only for a URI, so rendering
from a folder starts fast."""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

import torch

from pipeline.config import MelConfig
from pipeline.errors import PipelineError
from pipeline.inference.models import MODEL_NAMES, PerformerModels, load_folder
from pipeline.models.alignment import AlignmentModel
from pipeline.models.synthesis import SynthesisModel
from pipeline.models.vocoders import VOCODER_KINDS, Vocoder
from pipeline.registry.common import REGISTERED_PREFIX


def load_models(source: str | Path, mel: MelConfig | None, device: str | torch.device = "cpu") -> PerformerModels:
    """The three models from a folder of stage outputs or from MLflow, for the mel recipe ``mel``
    (params.yaml's; a composite registered model carries its own, and ``mel`` may then be None).

    ``source`` is one of:

    * a folder holding ``alignment/model.pt``, ``synthesis/model.pt``, ``hifigan/model.pt`` (the
      training stages' outputs, ``models/`` by default);
    * an MLflow model URI with ``{name}`` in it, filled with alignment, synthesis and hifigan,
      e.g. ``models:/deep-performer-{name}@champion``;
    * ``models:/@ALIAS`` or ``models:/@ALIAS`` shorthand for the registered models
      ``deep-performer-{alignment,synthesis,hifigan}`` at that alias;
    * three MLflow model URIs separated by commas, in the order alignment,synthesis,hifigan;
    * the composite registered model: ``models:/deep-performer@ALIAS`` or ``models:/deep-performer/VERSION``
      (see :mod:`pipeline.registry`), which holds all three.

    MLflow URIs are resolved against the tracking store of :func:`pipeline.tracking.tracking_uri`.
    """
    text = str(source)
    if "{name}" in text:
        uris = [text.format(name=name) for name in MODEL_NAMES]
    elif text.startswith("models:/@"):
        uris = [f"models:/{REGISTERED_PREFIX}{name}@{text[len('models:/@') :]}" for name in MODEL_NAMES]
    elif "," in text:
        uris = [u.strip() for u in text.split(",")]
        if len(uris) != 3:
            raise PipelineError("give three model URIs: alignment,synthesis,hifigan", text)
    elif re.fullmatch(r"models:/deep-performer(@[^/@]+|/(\d+|latest))", text):
        from pipeline.registry.serving import load_composite  # MLflow's pyfunc: imported only for it

        return load_composite(text, device)
    elif ":/" in text:
        raise PipelineError(
            "an MLflow URI for the three models needs {name} in it "
            "(e.g. models:/deep-performer-{name}@champion), or is the composite "
            "models:/deep-performer@ALIAS",
            text,
        )
    elif mel is None:
        raise PipelineError("parameter file not found: the mel recipe of these models is its mel group", text)
    else:
        return load_folder(Path(text), mel, device)
    if mel is None:
        raise PipelineError("parameter file not found: the mel recipe of these models is its mel group", text)
    models = [_load_mlflow(uri, device) for uri in uris]
    for model, classes in zip(models, ((AlignmentModel,), (SynthesisModel,), tuple(VOCODER_KINDS.values()))):
        if not isinstance(model, classes):
            expected = " or ".join(c.__name__ for c in classes)
            raise PipelineError(f"expected a {expected}, the URI holds a {type(model).__name__}", text)
    alignment, synthesis, vocoder = models  # their classes checked just above
    return PerformerModels(
        cast(AlignmentModel, alignment), cast(SynthesisModel, synthesis), cast(Vocoder, vocoder), mel=mel, source=text
    )


def _load_mlflow(uri: str, device: str | torch.device) -> torch.nn.Module:
    import mlflow
    import mlflow.pytorch

    from pipeline.tracking import lookup_tracking_uri, tracking_uri

    # models:/ and runs:/ are looked up in the store, which a look-up never creates; other URIs name files
    mlflow.set_tracking_uri(lookup_tracking_uri() if uri.startswith(("models:/", "runs:/")) else tracking_uri())
    try:
        return mlflow.pytorch.load_model(uri, map_location=torch.device(device)).eval()
    except Exception as err:  # noqa: BLE001  (any failure to load is one line for the user)
        raise PipelineError(f"cannot load the model from MLflow: {str(err).splitlines()[0]}", uri) from None
