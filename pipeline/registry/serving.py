"""Serving: the composite ``deep-performer`` pyfunc model (score in, audio out) and loading the three
models from a folder or any MLflow model URI (what ``performer render --models`` accepts)."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel

from pipeline.config import MelConfig, from_dict
from pipeline.errors import PipelineError
from pipeline.inference.models import MODEL_NAMES, PerformerModels
from pipeline.registry.common import COMPOSITE, _client, _first_line

# ------------------------------------------------------------------------------------------ composite pyfunc


def _score_file(value: str, folder: Path, index: int) -> Path:
    """A path to the score of one request row: the path itself, or a file decoded from base64."""
    text = str(value).strip()
    if len(text) < 4096 and "\n" not in text:
        path = Path(text).expanduser()
        try:
            if path.is_file():
                return path
        except OSError:
            pass
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        data = b""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:5]
    if head.startswith(b"MThd"):
        suffix = ".mid"
    elif head.startswith(b"PK"):
        suffix = ".mxl"
    elif head.startswith(b"<"):
        suffix = ".musicxml"
    else:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise PipelineError(f"score {shown!r} is neither an existing file nor base64 of a MIDI/MusicXML file")
    path = folder / f"score{index}{suffix}"
    path.write_bytes(data)
    return path


def encode_audio(audio, sample_rate: int) -> str:
    """Base64 of a mono float32 WAV file."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, format="WAV", subtype="FLOAT")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_audio(text: str):
    """``(audio float32 array, sample_rate)`` of the ``audio`` column of the composite model's output."""
    import soundfile as sf

    audio, rate = sf.read(io.BytesIO(base64.b64decode(text)), dtype="float32")
    return audio, rate


class DeepPerformerModel(PythonModel):
    """The composite ``deep-performer`` model: score (+ performer, tempo) -> 16 kHz audio.

    ``performer``: a name or a blend ``"aurora:0.7,bruno:0.3"`` (as ``performer render --performer``;
    :mod:`pipeline.inference.runtime.blend`); empty: the first performer.

    Its artifacts ``alignment``, ``synthesis``, ``hifigan`` are MLflow pytorch models (copies of the
    registered component versions). The device is ``DEEP_PERFORMER_DEVICE`` (auto: CUDA when present).
    """

    def load_context(self, context) -> None:
        import mlflow.pytorch

        from pipeline.device import select_device

        device = select_device(os.environ.get("DEEP_PERFORMER_DEVICE", "auto"))
        modules = [
            mlflow.pytorch.load_model(context.artifacts[name], map_location=torch.device(device)).eval()
            for name in MODEL_NAMES
        ]
        if "mel" not in context.artifacts:
            raise PipelineError(
                f"this {COMPOSITE} version carries no mel recipe (registered by an older version): "
                "register the models again"
            )
        mel = from_dict(MelConfig, json.loads(Path(context.artifacts["mel"]).read_text()), "mel")
        alignment, synthesis, vocoder = modules
        self.models = PerformerModels(alignment, synthesis, vocoder, mel=mel, source=COMPOSITE).to(device)

    # the DataFrame hint tells MLflow that the signature given at logging time (score, performer, tempo
    # columns) validates requests, not type hints
    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        try:
            return pd.DataFrame(self.render_rows(_as_frame(model_input)))
        except PipelineError as err:  # a bad request: HTTP 400 with the one-line message when served
            raise MlflowException(str(err), error_code=INVALID_PARAMETER_VALUE) from None

    def render_rows(self, frame) -> list[dict[str, Any]]:
        from pipeline.inference.runtime.render import render_score
        from pipeline.scores import read_score

        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, row in enumerate(frame.to_dict("records")):
                if row.get("score") is None:
                    raise PipelineError("each request row needs a score (a path or base64 of the file)")
                notes = read_score(_score_file(row["score"], Path(tmp), i))
                performer = row.get("performer")
                if performer is None or (isinstance(performer, float) and math.isnan(performer)) or performer == "":
                    performer = self.models.performers[0] if self.models.performers else "0"
                tempo = row.get("tempo")
                tempo = None if tempo is None or (isinstance(tempo, float) and math.isnan(tempo)) else float(tempo)
                result = render_score(self.models, notes, str(performer), tempo)
                rows.append(
                    {
                        "audio": encode_audio(result.audio, result.sample_rate),
                        "sample_rate": int(result.sample_rate),
                        "samples": len(result.audio),
                    }
                )
        return rows


def _as_frame(model_input):
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, str):
        return pd.DataFrame({"score": [model_input]})
    if isinstance(model_input, dict):
        return pd.DataFrame([model_input])
    return pd.DataFrame(list(model_input))


def _signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema(
        [
            ColSpec("string", "score"),
            ColSpec("string", "performer", required=False),
            ColSpec("double", "tempo", required=False),
        ]
    )
    outputs = Schema([ColSpec("string", "audio"), ColSpec("long", "sample_rate"), ColSpec("long", "samples")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def load_composite(uri: str, device="cpu"):
    """:class:`pipeline.inference.PerformerModels` of a composite model URI (``models:/deep-performer@ALIAS``)."""
    _client(None, lookup=True)
    try:
        python_model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except Exception as err:  # noqa: BLE001  (any failure to load is one line for the user)
        raise PipelineError(f"cannot load the model from MLflow: {_first_line(err)}", uri) from None
    if not isinstance(python_model, DeepPerformerModel):
        raise PipelineError(f"not a {COMPOSITE} model (it holds a {type(python_model).__name__})", uri)
    models = python_model.models.to(device)
    models.source = uri
    return models
