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
