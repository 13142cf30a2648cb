"""`performer flow ...`: run the pipeline as a Prefect flow, or serve the scheduled retraining deployment."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.errors import PipelineError

flow_app = typer.Typer(
    help="Prefect orchestration: the DVC pipeline as flows (run now, or serve on a schedule).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

DEFAULT_CRON = "0 3 * * 1"  # kept equal to pipeline.flows.retrain.DEFAULT_CRON (not imported: Prefect is slow to load)


def _fail(err: Exception) -> None:
    from pipeline.failures import report

    report(err)
    raise typer.Exit(1)


@flow_app.command("run")
def run(
    targets: list[str] | None = typer.Argument(
        None,
        help="stages to bring up to date, with everything upstream (default: all); a foreach name means all its stages",
    ),
    root: Path = typer.Option(Path("."), help="the DVC project"),
    pipeline: str = typer.Option(
        "dvc.yaml",
        help="the pipeline file, relative to the project: dvc.yaml (the main job) or a second job's "
        "(jobs/real-violin/dvc.yaml: the Bach Violin Dataset, `make real`)",
    ),
    force: list[str] | None = typer.Option(
        None, "--force", "-f", help="run this stage even if it is up to date (repeatable)"
    ),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", help="at most this many stages at once (default: half the cores, 2 to 4)"
    ),
    retries: int | None = typer.Option(
        None,
        help="retries of the download stage, with exponential back-off "
        "(default: 3 when data.source is not builtin, else 0)",
    ),
) -> None:
    """Reproduce the DVC pipeline as a Prefect flow: one task per stage, independent stages at the same time,
    unchanged stages skipped, every finished stage recorded in dvc.lock."""
    from pipeline.flows.reproduce import reproduce

    retry = {"prepare": retries} if retries is not None else None
    try:
        results = reproduce(
            str(root), targets=targets or None, force=force or None, jobs=jobs, retries=retry, pipeline=pipeline
        )
    except PipelineError as err:
        _fail(err)
    ran = [name for name, r in results.items() if r["status"] == "ran"]
    typer.echo(f"{len(ran)} stage(s) ran{': ' + ', '.join(ran) if ran else ''}; {len(results) - len(ran)} up to date")


@flow_app.command("serve")
def serve(
    root: Path = typer.Option(Path("."), help="the DVC project the retrain runs work in"),
    cron: str = typer.Option(DEFAULT_CRON, help="when to retrain (cron, 5 fields)"),
    timezone: str | None = typer.Option(None, help="time zone of the cron schedule (default UTC)"),
    name: str = typer.Option("retrain", help="deployment name"),
    metric: str | None = typer.Option(
        None, help="metric the champion is chosen by (lower is better; default deep_performer.audio_mel_mse)"
    ),
    tracking_uri: str | None = typer.Option(
        None, help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"
    ),
    refresh: list[str] | None = typer.Option(None, help="stages re-run at every retrain (default: prepare)"),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help="at most this many stages at once"),
) -> None:
    """Serve the `retrain` flow (refresh data, reproduce, evaluate, register, promote if better) as a deployment
    on a cron schedule, against the Prefect server at PREFECT_API_URL. Runs until interrupted."""
    from pipeline.flows.retrain import serve_retrain

    parameters = {
        k: v
        for k, v in {"metric": metric, "tracking_uri": tracking_uri, "refresh": refresh, "jobs": jobs}.items()
        if v is not None
    }
    try:
        serve_retrain(root, cron=cron, name=name, timezone=timezone, parameters=parameters)
    except PipelineError as err:
        _fail(err)


if __name__ == "__main__":  # pragma: no cover
    flow_app()
