"""`performer models ...`: the MLflow model registry (list, register, promote); see :mod:`pipeline.registry`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipeline.errors import PipelineError

models_app = typer.Typer(
    help="The MLflow model registry: candidate and champion versions of the Deep Performer.", no_args_is_help=True
)

TRACKING = typer.Option(
    None,
    "--tracking-uri",
    help="MLflow tracking store (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the project root)",
)


def _fail(err: Exception) -> None:
    from pipeline.failures import report

    report(err)
    raise typer.Exit(1)


@models_app.command("list")
def list_(
    tracking_uri: str | None = TRACKING,
    metric: list[str] = typer.Option(
        [],
        "--metric",
        help="metric tag to show (repeatable; default: deep_performer.audio_mel_mse and deep_performer.mel_mse)",
    ),
    as_json: bool = typer.Option(False, "--json", help="print the versions as JSON"),
) -> None:
    """List the registered versions with their aliases and evaluation metrics."""
    from pipeline.registry.common import SHOWN_METRICS
    from pipeline.registry.promotion import format_versions, list_versions

    try:
        rows = list_versions(tracking_uri)
    except PipelineError as err:
        _fail(err)
    typer.echo(json.dumps(rows, indent=2) if as_json else format_versions(rows, tuple(metric) or SHOWN_METRICS))


@models_app.command()
def register(
    root: Path = typer.Option(Path("."), help="project root (models/*/mlflow.json, metrics/evaluate.json)"),
    tracking_uri: str | None = TRACKING,
) -> None:
    """Register the trained models as new versions with the alias `candidate`."""
    from pipeline.registry.promotion import register_candidate

    try:
        versions = register_candidate(root, tracking_uri=tracking_uri)
    except PipelineError as err:
        _fail(err)
    typer.echo("registered candidate: " + ", ".join(f"{name} v{version}" for name, version in versions.items()))


@models_app.command()
def promote(
    metric: str = typer.Option("deep_performer.audio_mel_mse", help="metric tag to compare (lower is better)"),
    tracking_uri: str | None = TRACKING,
) -> None:
    """Make the candidate the champion if there is none or the candidate is strictly better on METRIC."""
    from pipeline.registry.promotion import promote_if_better

    try:
        promoted = promote_if_better(tracking_uri=tracking_uri, metric=metric)
    except PipelineError as err:
        _fail(err)
    typer.echo(
        "promoted: the candidate is now the champion"
        if promoted
        else "kept the champion (the candidate is not strictly better)"
    )
