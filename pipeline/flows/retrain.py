"""`retrain`: refresh the data, reproduce the pipeline, evaluate, register the candidate models in the MLflow
registry and promote them when they beat the champion; `serve_retrain` serves it as a cron deployment.

Each step is a subflow or task of its own in Prefect's UI: refresh-data (the data stages forced to run, with
the download retries of `reproduce`; DVC skips everything downstream when the data came out the same),
reproduce (every stage upstream of the evaluation), evaluate (the evaluate stage), register-candidate and
promote-if-better (`pipeline.registry`, imported when the task runs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipeline.errors import PipelineError
from pipeline.flows.dag import read_dag
from pipeline.flows.reproduce import reproduce

DEFAULT_CRON = "0 3 * * 1"  # Mondays at 03:00
DEFAULT_METRIC = "deep_performer.audio_mel_mse"
DEFAULT_REFRESH = ("prepare",)  # the stage that fetches (or renders) the raw corpus
DEPLOYMENT_NAME = "retrain"


@task(name="read-metric", cache_policy=NO_CACHE)
def read_metric(root: str, stage: str, metric: str) -> float | None:
    """The candidate's value of `metric` (a dotted key) in the evaluate stage's JSON metrics files."""
    dag = read_dag(root)
    node = dag.stages[dag.resolve([stage])[0]]
    for out in node.outs:
        path = Path(root) / out
        if path.suffix == ".json" and path.is_file():
            value: Any = json.loads(path.read_text())
            for key in metric.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, (int, float)):
                get_run_logger().info("candidate %s = %s (%s)", metric, value, out)
                return float(value)
    get_run_logger().warning("no %s in the outputs of stage %s", metric, stage)
    return None


@task(name="register-candidate", cache_policy=NO_CACHE)
def register_candidate(root: str, tracking_uri: str | None) -> dict[str, int]:
    from pipeline.registry import promotion  # MLflow is slow to import: only when the task runs

    versions = promotion.register_candidate(Path(root), tracking_uri=tracking_uri)
    get_run_logger().info("registered candidate versions: %s", versions)
    return versions


@task(name="promote-if-better", cache_policy=NO_CACHE)
def promote_if_better(tracking_uri: str | None, metric: str) -> bool:
    from pipeline.registry import promotion

    promoted = promotion.promote_if_better(tracking_uri=tracking_uri, metric=metric)
    get_run_logger().info("champion %s", "moved to the candidate" if promoted else "kept (the candidate is not better)")
    return promoted


@flow(name="retrain", log_prints=True)
def retrain(
    root: str = ".",
    refresh: list[str] | None = None,
    evaluate_stage: str = "evaluate",
    metric: str = DEFAULT_METRIC,
    tracking_uri: str | None = None,
    jobs: int | None = None,
) -> dict[str, Any]:
    """Refresh data -> reproduce -> evaluate -> register the candidate -> promote it if strictly better.

    refresh: stages run even when DVC finds them up to date (default: `prepare`, when the pipeline has it; [] to
    refresh nothing). The champion rule: :func:`pipeline.registry.promotion.promote_if_better`.
    """
    path = Path(root).resolve()
    dag = read_dag(path)
    if evaluate_stage not in dag.stages:
        raise PipelineError(f"no stage {evaluate_stage!r} in the pipeline (known: {', '.join(dag.stages)})", path)
    refresh = [s for s in DEFAULT_REFRESH if s in dag.stages] if refresh is None else list(refresh)
    stages: dict[str, Any] = {}
    if refresh:
        stages.update(reproduce.with_options(name="refresh-data")(str(path), targets=refresh, force=refresh, jobs=jobs))
    evaluation = set(dag.downstream(evaluate_stage))
    before = [n for n in dag.stages if n not in evaluation]
    stages.update(reproduce(str(path), targets=before, jobs=jobs))
    stages.update(reproduce.with_options(name="evaluate")(str(path), targets=[evaluate_stage], jobs=jobs))
    value = read_metric(str(path), evaluate_stage, metric)
    versions = register_candidate(str(path), tracking_uri)
    promoted = promote_if_better(tracking_uri, metric)
    return {"stages": stages, "metric": value, "versions": versions, "promoted": promoted}


def serve_retrain(
    root: Path | str = ".",
    cron: str = DEFAULT_CRON,
    name: str = DEPLOYMENT_NAME,
    timezone: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> None:
    """Serve the `retrain` deployment on its cron schedule against the Prefect server at PREFECT_API_URL
    (blocks until interrupted; runs are triggered by the schedule or `prefect deployment run retrain/NAME`)."""
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise PipelineError(
            "PREFECT_API_URL is not set: start a server (`prefect server start --host 127.0.0.1`) "
            "and export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    try:
        schedule = CronSchedule(cron=cron, timezone=timezone or "UTC")
    except ValueError as err:
        raise PipelineError(f"invalid cron {cron!r}: {err}") from err
    params = {"root": str(Path(root).resolve()), **(parameters or {})}
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    retrain.serve(name=name, schedules=[schedule], parameters=params, pause_on_shutdown=False)
