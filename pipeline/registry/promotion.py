"""Promotion: register the trained models as a candidate, tag it with its evaluation, promote it to
champion if better, list the versions."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.config import load_mel, params_chain
from pipeline.errors import PipelineError
from pipeline.inference.models import MODEL_NAMES
from pipeline.io import file_md5
from pipeline.registry.common import (
    CANDIDATE,
    CHAMPION,
    COMPOSITE,
    DEFAULT_METRIC,
    EXPERIMENT,
    PREVIOUS,
    REGISTERED_PREFIX,
    SHOWN_METRICS,
    TAGGED_SECTIONS,
    _client,
    _first_line,
    all_names,
    component_names,
)
from pipeline.registry.serving import DeepPerformerModel, _signature

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


def check_evaluated_models(root: Path, evaluate_json: Path) -> dict[str, str]:
    """``{name: md5}`` of ``root/models/<name>/model.pt``, once evaluate.json is known to evaluate exactly these.

    The evaluate stage records the md5 of every model file it loaded (its ``models`` section): numbers
    measured on other models (training re-ran, evaluate did not) must not be tagged on these.
    """
    try:
        recorded = json.loads(evaluate_json.read_text()).get("models")
    except (OSError, ValueError, AttributeError) as err:
        raise PipelineError(f"cannot read the evaluation metrics: {_first_line(err)}", evaluate_json) from None
    if not isinstance(recorded, dict):
        raise PipelineError(
            "records no hashes of the models it evaluated (an older evaluate stage's; run `dvc repro evaluate` first)",
            evaluate_json,
        )
    hashes, stale = {}, []
    for name in MODEL_NAMES:
        model = root / "models" / name / "model.pt"
        if not model.is_file():
            raise PipelineError(f"no trained {name} model (run `dvc repro train_{name}`)", model)
        hashes[name] = file_md5(model)
        if recorded.get(name) != hashes[name]:
            stale.append(str(model.relative_to(root)))
    if stale:
        raise PipelineError(
            f"evaluates other models than {', '.join(stale)} (run `dvc repro evaluate` first)", evaluate_json
        )
    return hashes


def _metric(version, metric: str) -> float | None:
    text = version.tags.get(metric)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


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

    Reads ``root/models/{alignment,synthesis,hifigan}/mlflow.json``, ``root/metrics/evaluate.json`` and the
    mel recipe of ``root/params.yaml`` (a second job's folder, ``jobs/real-violin``: with the project's params.yaml
    under it; stored with the composite model); every input is checked before
    anything is registered, and refused when evaluate.json evaluated other model files than
    ``root/models/<name>/model.pt`` (:func:`check_evaluated_models`).
    """
    import mlflow

    from pipeline.tracking import git_commit, open_experiment

    root = Path(root)
    mel = load_mel(*params_chain(root))  # a second job's folder: the project's params.yaml + its overlay
    tags = evaluation_tags(root / "metrics" / "evaluate.json")
    sources = {name: _trained_model_uri(root, name) for name in MODEL_NAMES}
    hashes = check_evaluated_models(root, root / "metrics" / "evaluate.json")
    client = _client(tracking_uri, root)
    commit = git_commit(root)
    registered_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    common = {**tags, "git_commit": commit, "registered_at": registered_at}

    versions: dict[str, int] = {}
    for name, (uri, run_id) in sources.items():
        registered = REGISTERED_PREFIX + name
        try:
            mv = mlflow.register_model(
                uri,
                registered,
                tags={**common, "source_run_id": run_id, "model_md5": hashes[name]},
                await_registration_for=60,
            )
        except Exception as err:  # noqa: BLE001
            raise PipelineError(
                f"cannot register the {name} model {uri}: {_first_line(err)}", root / "models" / name / "mlflow.json"
            ) from None
        versions[registered] = int(mv.version)

    open_experiment(EXPERIMENT, client.tracking_uri)  # the training runs' experiment (safe if it races)
    component_tags = {f"component.{name}": str(v) for name, v in versions.items()}
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name="register_candidate") as run:
        mel_file = Path(tmp) / "mel.json"  # the recipe the models were trained on, for rendering anywhere
        mel_file.write_text(json.dumps(dataclasses.asdict(mel)))
        artifacts = {"mel": str(mel_file)}
        for name in MODEL_NAMES:
            registered = REGISTERED_PREFIX + name
            target = Path(tmp) / name
            target.mkdir()
            artifacts[name] = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{registered}/{versions[registered]}", dst_path=str(target)
            )
        mlflow.set_tags({"git_commit": commit, "stage": "register_candidate", **component_tags})
        mlflow.log_metrics({key: float(value) for key, value in tags.items()})
        mlflow.log_artifact(str(root / "metrics" / "evaluate.json"))
        with warnings.catch_warnings():  # no input example: checking one would render a score at logging time
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.pyfunc.log_model(
                name=COMPOSITE,
                python_model=DeepPerformerModel(),
                artifacts=artifacts,
                signature=_signature(),
                pip_requirements=["torch==2.13.0", "numpy", "librosa", "soundfile", "pandas", "mido", "music21"],
                metadata={"sample_rate": mel.sample_rate, "components": component_tags},
            )
        mv = mlflow.register_model(
            info.model_uri,
            COMPOSITE,
            await_registration_for=60,
            tags={**common, **component_tags, "source_run_id": run.info.run_id},
        )
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

    client = _client(tracking_uri, lookup=True)
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
            rows.append(
                {
                    "name": name,
                    "version": int(mv.version),
                    "aliases": sorted(by_version.get(str(mv.version), [])),
                    "metrics": metrics,
                    "git_commit": mv.tags.get("git_commit", ""),
                    "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc).strftime(
                        "%Y-%m-%d %H:%M"
                    ),
                    "components": {k[len("component.") :]: v for k, v in mv.tags.items() if k.startswith("component.")},
                }
            )
    return rows


def format_versions(rows: list[dict[str, Any]], metrics: tuple[str, ...] = SHOWN_METRICS) -> str:
    """A plain-text table of :func:`list_versions`."""
    if not rows:
        return "no registered versions (run `performer models register`)"
    header = ["model", "version", "aliases", *metrics, "git_commit", "registered"]
    table = [header]
    for row in rows:
        values = [f"{row['metrics'][m]:.4f}" if m in row["metrics"] else "-" for m in metrics]
        table.append(
            [
                row["name"],
                str(row["version"]),
                ",".join(row["aliases"]) or "-",
                *values,
                (row["git_commit"] or "-")[:10],
                row["created"],
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table)
