"""MLflow tracking store set-up: training stages that start together (the `reproduce` flow runs them in
parallel) must all get the store and the experiment, not race to create them."""

import multiprocessing
import sqlite3

import pytest

from pipeline.tracking import open_experiment


def _start_stage(uri: str, barrier, results, index: int) -> None:
    import mlflow

    barrier.wait()  # every process has imported mlflow: start together, like parallel stages
    try:
        open_experiment("deep-performer", uri)
        with mlflow.start_run(run_name=f"stage{index}"):
            mlflow.log_metric("loss", float(index))
        results[index] = "ok"
    except Exception as err:  # noqa: BLE001  (reported to the test)
        results[index] = f"{type(err).__name__}: {err}"[:300]


@pytest.mark.slow
def test_parallel_stages_share_a_new_sqlite_store(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    context = multiprocessing.get_context("spawn")
    n = 4
    with context.Manager() as manager:
        barrier, results = manager.Barrier(n), manager.dict()
        procs = [context.Process(target=_start_stage, args=(uri, barrier, results, i)) for i in range(n)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=300)
        outcome = dict(results)
    assert outcome == dict.fromkeys(range(n), "ok"), outcome
    with sqlite3.connect(db) as con:
        experiments = con.execute("SELECT name FROM experiments WHERE name = 'deep-performer'").fetchall()
        runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert experiments == [("deep-performer",)] and runs == n


def test_a_jobs_dependency_tags_are_named_from_the_project_root_and_accepted_by_mlflow(tmp_path):
    """A job's dvc.lock spells the library as ``../../pipeline/...``: MLflow refuses such a tag key, so
    every training and evaluate run of a job failed before it trained a step."""
    import mlflow
    import yaml

    from pipeline.tracking import MlflowTracker, dvc_dep_tags

    (tmp_path / ".dvc").mkdir()
    job = tmp_path / "jobs" / "real"
    job.mkdir(parents=True)
    deps = [
        {"path": "../../pipeline/__init__.py", "md5": "aa"},
        {"path": "../../params.yaml", "md5": "bb"},
        {"path": "params.yaml", "md5": "cc"},
        {"path": "data/features", "md5": "dd.dir"},
    ]
    (job / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"train_x": {"deps": deps}}}))
    tags = dvc_dep_tags("train_x", job)
    assert tags == {
        "dvc_dep:pipeline/__init__.py": "aa",
        "dvc_dep:params.yaml": "bb",
        "dvc_dep:jobs/real/params.yaml": "cc",
        "dvc_dep:jobs/real/data/features": "dd.dir",
    }
    tracker = MlflowTracker("deep-performer", "train_x", job / "models", tags=tags, root=job)
    try:
        run = mlflow.get_run(tracker.run.info.run_id)
        assert run.data.tags["dvc_dep:jobs/real/params.yaml"] == "cc"
    finally:
        mlflow.end_run()
