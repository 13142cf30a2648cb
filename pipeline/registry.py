"""The MLflow model registry: register the trained models as a candidate, promote it to champion if better.

Registered models (all in the tracking store of :func:`pipeline.tracking.tracking_uri`, or ``tracking_uri``):

* ``deep-performer-alignment``, ``deep-performer-synthesis``, ``deep-performer-hifigan``: the three
  torch modules the training stages logged (``models/<name>/mlflow.json``), as they are;
* ``deep-performer``: the composite, an MLflow pyfunc that bundles copies of the three models (it loads
  on its own, from its own artifacts). Input: a DataFrame with a ``score`` column (a path, or the base64
  of a MIDI/MusicXML/MXL file), optional ``performer`` (default: the first one the models know) and
  ``tempo`` (quarter notes per minute; default: the score's). Output, one row per input row: ``audio``
  (base64 of a 16 kHz mono float32 WAV file, see :func:`decode_audio`), ``sample_rate``, ``samples``.
  ``mlflow models serve -m models:/deep-performer@champion`` serves it; ``performer render --models
  models:/deep-performer@champion`` renders with it.

:func:`register_candidate` adds one new version to each of the four, tags each new version with the
evaluation metrics of ``metrics/evaluate.json`` (``deep_performer.audio_mel_mse``, ``deep_performer.mel_mse``,
... as tags named by their dotted key) and the git commit, and moves the alias ``candidate`` to them.
The composite's version also records its three component versions (tags ``component.<registered name>``).

**Promotion rule** (:func:`promote_if_better`): the ``candidate`` and ``champion`` versions of
``deep-performer`` are compared on one metric tag, ``deep_performer.audio_mel_mse`` by default, where
lower is better. The candidate becomes champion when there is no champion yet, or when its value is
strictly lower than the champion's; then the alias ``champion`` moves to the candidate's versions of all
four registered models together (the composite and its three components), and the versions it replaced
keep the alias ``previous-champion`` (to roll back, move ``champion`` to them). A tie, a worse candidate,
or a candidate that already is the champion leaves everything as it is (returns False). A candidate
without the metric is an error, not a silent pass; a champion without it is replaced.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import os
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.pyfunc import PythonModel

from pipeline.errors import PipelineError
from pipeline.inference import MODEL_NAMES, REGISTERED_PREFIX

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per file of every copied model

COMPOSITE = "deep-performer"
CANDIDATE, CHAMPION, PREVIOUS = "candidate", "champion", "previous-champion"
DEFAULT_METRIC = "deep_performer.audio_mel_mse"
EXPERIMENT = "deep-performer"
# the sections of metrics/evaluate.json that describe the registered models (tagged on every version)
TAGGED_SECTIONS = ("deep_performer", "vocoder_reconstruction")
SHOWN_METRICS = ("deep_performer.audio_mel_mse", "deep_performer.mel_mse")


def component_names() -> list[str]:
    return [REGISTERED_PREFIX + name for name in MODEL_NAMES]


def all_names() -> list[str]:
    return [COMPOSITE, *component_names()]


def _client(tracking_uri: str | None, root: Path | str = "."):
    import mlflow
    from mlflow import MlflowClient

    from pipeline.tracking import tracking_uri as default_uri

    uri = tracking_uri or default_uri(root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


# ------------------------------------------------------------------------------------------ metrics


def evaluation_tags(evaluate_json: Path) -> dict[str, str]:
    """``{dotted key: value}`` of the numbers in ``TAGGED_SECTIONS`` (and top-level numbers) of evaluate.json."""
    if not evaluate_json.is_file():
        raise PipelineError("no evaluation metrics (run the evaluate stage first: `dvc repro evaluate`)", evaluate_json)
    try:
        data = json.loads(evaluate_json.read_text())
    except (OSError, ValueError) as err:
        raise PipelineError(f"cannot read the evaluation metrics: {_first_line(err)}", evaluate_json) from None
    tags: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            tags[key] = repr(value)
        elif key in TAGGED_SECTIONS and isinstance(value, dict):
            for sub, number in value.items():
                if isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number):
                    tags[f"{key}.{sub}"] = repr(number)
    for needed in SHOWN_METRICS:
        if needed not in tags:
            raise PipelineError(f"the evaluation metrics have no {needed} (re-run the evaluate stage)", evaluate_json)
    return tags


def _metric(version, metric: str) -> float | None:
    text = version.tags.get(metric)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


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

    Its artifacts ``alignment``, ``synthesis``, ``hifigan`` are MLflow pytorch models (copies of the
    registered component versions). The device is ``DEEP_PERFORMER_DEVICE`` (auto: CUDA when present).
    """

    def load_context(self, context) -> None:
        import mlflow.pytorch
        import torch

        from pipeline.inference import PerformerModels
        from pipeline.training.device import select_device

        device = select_device(os.environ.get("DEEP_PERFORMER_DEVICE", "auto"))
        modules = [mlflow.pytorch.load_model(context.artifacts[name], map_location=torch.device(device)).eval()
                   for name in MODEL_NAMES]
        alignment, synthesis, vocoder = modules
        self.models = PerformerModels(alignment, synthesis, vocoder, source=COMPOSITE).to(device)

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
        from pipeline.inference import render_score
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
                rows.append({"audio": encode_audio(result.audio, result.sample_rate),
                             "sample_rate": int(result.sample_rate), "samples": len(result.audio)})
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

    inputs = Schema([ColSpec("string", "score"), ColSpec("string", "performer", required=False),
                     ColSpec("double", "tempo", required=False)])
    outputs = Schema([ColSpec("string", "audio"), ColSpec("long", "sample_rate"), ColSpec("long", "samples")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def load_composite(uri: str, device="cpu"):
    """:class:`pipeline.inference.PerformerModels` of a composite model URI (``models:/deep-performer@ALIAS``)."""
    _client(None)
    try:
        python_model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except Exception as err:  # noqa: BLE001  (any failure to load is one line for the user)
        raise PipelineError(f"cannot load the model from MLflow: {_first_line(err)}", uri) from None
    if not isinstance(python_model, DeepPerformerModel):
        raise PipelineError(f"not a {COMPOSITE} model (it holds a {type(python_model).__name__})", uri)
    models = python_model.models.to(device)
    models.source = uri
    return models


# ------------------------------------------------------------------------------------------ register


def _trained_model_uri(root: Path, name: str) -> tuple[str, str]:
    info_path = root / "models" / name / "mlflow.json"
    if not info_path.is_file():
        raise PipelineError(f"no MLflow record of the trained {name} model (run `dvc repro train_{name}`)", info_path)
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError) as err:
        raise PipelineError(f"cannot read it: {_first_line(err)}", info_path) from None
    run_id = str(info.get("run_id") or "")
    uri = info.get("model_uri") or (f"runs:/{run_id}/{name}" if run_id else "")
    if not uri:
        raise PipelineError("it names neither a model_uri nor a run_id", info_path)
    return uri, run_id


def register_candidate(root: Path = Path("."), tracking_uri: str | None = None) -> dict[str, int]:
    """Register the trained models of ``root`` as new versions with alias ``candidate``; ``{name: version}``.

    Reads ``root/models/{alignment,synthesis,hifigan}/mlflow.json`` and ``root/metrics/evaluate.json``;
    every input is checked before anything is registered.
    """
    import mlflow

    from pipeline.tracking import git_commit, open_experiment

    root = Path(root)
    tags = evaluation_tags(root / "metrics" / "evaluate.json")
    sources = {name: _trained_model_uri(root, name) for name in MODEL_NAMES}
    client = _client(tracking_uri, root)
    commit = git_commit(root)
    registered_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    common = {**tags, "git_commit": commit, "registered_at": registered_at}

    versions: dict[str, int] = {}
    for name, (uri, run_id) in sources.items():
        registered = REGISTERED_PREFIX + name
        try:
            mv = mlflow.register_model(uri, registered, tags={**common, "source_run_id": run_id},
                                       await_registration_for=60)
        except Exception as err:  # noqa: BLE001
            raise PipelineError(f"cannot register the {name} model {uri}: {_first_line(err)}",
                                root / "models" / name / "mlflow.json") from None
        versions[registered] = int(mv.version)

    open_experiment(EXPERIMENT, client.tracking_uri)  # the training runs' experiment (safe if it races)
    component_tags = {f"component.{name}": str(v) for name, v in versions.items()}
    with tempfile.TemporaryDirectory() as tmp, \
            mlflow.start_run(run_name="register_candidate") as run:
        artifacts = {}
        for name in MODEL_NAMES:
            registered = REGISTERED_PREFIX + name
            target = Path(tmp) / name
            target.mkdir()
            artifacts[name] = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{registered}/{versions[registered]}", dst_path=str(target))
        mlflow.set_tags({"git_commit": commit, "stage": "register_candidate", **component_tags})
        mlflow.log_metrics({key: float(value) for key, value in tags.items()})
        mlflow.log_artifact(str(root / "metrics" / "evaluate.json"))
        with warnings.catch_warnings():  # no input example: checking one would render a score at logging time
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.pyfunc.log_model(
                name=COMPOSITE, python_model=DeepPerformerModel(), artifacts=artifacts, signature=_signature(),
                pip_requirements=["torch==2.13.0", "numpy", "librosa", "soundfile", "pandas", "mido", "music21"],
                metadata={"sample_rate": 16000, "components": component_tags},
            )
        mv = mlflow.register_model(info.model_uri, COMPOSITE, await_registration_for=60,
                                   tags={**common, **component_tags, "source_run_id": run.info.run_id})
    versions = {COMPOSITE: int(mv.version), **versions}
    for name, version in versions.items():  # aliases last: a failure above leaves the old candidate in place
        client.set_registered_model_alias(name, CANDIDATE, str(version))
    return versions


# ------------------------------------------------------------------------------------------ promote


def _alias_version(client, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:  # no such alias (or no such registered model)
        return None


def promote_if_better(tracking_uri: str | None = None, metric: str = DEFAULT_METRIC) -> bool:
    """Move ``champion`` to the candidate when there is none or the candidate is strictly better (lower).

    Returns True when the champion moved. See the module docstring for the rule.
    """
    client = _client(tracking_uri)
    candidate = _alias_version(client, COMPOSITE, CANDIDATE)
    if candidate is None:
        raise PipelineError(f"no {CANDIDATE} version of {COMPOSITE} (run `performer models register` first)")
    value = _metric(candidate, metric)
    if value is None or not math.isfinite(value):
        raise PipelineError(f"the {CANDIDATE} ({COMPOSITE} version {candidate.version}) has no {metric} tag")
    champion = _alias_version(client, COMPOSITE, CHAMPION)
    if champion is not None:
        if champion.version == candidate.version:
            return False
        best = _metric(champion, metric)
        if best is not None and math.isfinite(best) and not value < best:
            return False
    targets = {COMPOSITE: candidate.version}
    for name in component_names():
        version = candidate.tags.get(f"component.{name}")
        if version is None:  # registered by hand: fall back to that model's own candidate alias
            other = _alias_version(client, name, CANDIDATE)
            if other is None:
                raise PipelineError(f"the {CANDIDATE} of {COMPOSITE} names no version of {name}")
            version = other.version
        targets[name] = str(version)
    promoted_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for name, version in targets.items():
        old = _alias_version(client, name, CHAMPION)
        if old is not None and old.version != version:
            client.set_registered_model_alias(name, PREVIOUS, old.version)
        client.set_registered_model_alias(name, CHAMPION, version)
        client.set_model_version_tag(name, version, "promoted_at", promoted_at)
    return True


# ------------------------------------------------------------------------------------------ list


def list_versions(tracking_uri: str | None = None, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Every version of the registered models (newest first per model): name, version, aliases, metrics, ..."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    rows = []
    for name in names or all_names():
        try:
            found = client.search_model_versions(f"name = '{name}'")
            by_version: dict[str, list[str]] = {}
            for alias, version in client.get_registered_model(name).aliases.items():
                by_version.setdefault(str(version), []).append(alias)
        except MlflowException:  # no such registered model
            continue
        for mv in sorted(found, key=lambda v: int(v.version), reverse=True):
            metrics = {}
            for key, text in mv.tags.items():
                if "." in key and not key.startswith("component."):
                    with contextlib.suppress(ValueError):
                        metrics[key] = float(text)
            rows.append({"name": name, "version": int(mv.version), "aliases": sorted(by_version.get(str(mv.version), [])),
                         "metrics": metrics, "git_commit": mv.tags.get("git_commit", ""),
                         "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc)
                         .strftime("%Y-%m-%d %H:%M"),
                         "components": {k[len("component."):]: v for k, v in mv.tags.items()
                                        if k.startswith("component.")}})
    return rows


def format_versions(rows: list[dict[str, Any]], metrics: tuple[str, ...] = SHOWN_METRICS) -> str:
    """A plain-text table of :func:`list_versions`."""
    if not rows:
        return "no registered versions (run `performer models register`)"
    header = ["model", "version", "aliases", *metrics, "git_commit", "registered"]
    table = [header]
    for row in rows:
        values = [f"{row['metrics'][m]:.4f}" if m in row["metrics"] else "-" for m in metrics]
        table.append([row["name"], str(row["version"]), ",".join(row["aliases"]) or "-", *values,
                      (row["git_commit"] or "-")[:10], row["created"]])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table)
