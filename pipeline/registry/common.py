"""What the registry's serving and promotion sides share: the registered names, the aliases, the
tracking client."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.inference.models import MODEL_NAMES

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per file of every copied model

COMPOSITE = "deep-performer"
REGISTERED_PREFIX = "deep-performer-"  # components: deep-performer-alignment, -synthesis, -hifigan
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


def _client(tracking_uri: str | None, root: Path | str = ".", *, lookup: bool = False):
    """A client of ``tracking_uri`` (default: :func:`pipeline.tracking.tracking_uri`). ``lookup``: only reads,
    so a missing SQLite store is an error (:func:`pipeline.tracking.lookup_tracking_uri`), not created."""
    import mlflow
    from mlflow import MlflowClient

    from pipeline.tracking import lookup_tracking_uri
    from pipeline.tracking import tracking_uri as default_uri

    uri = lookup_tracking_uri(tracking_uri, root) if lookup else tracking_uri or default_uri(root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
