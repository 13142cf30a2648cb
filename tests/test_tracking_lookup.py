"""Look-ups never create an MLflow store: `performer models list` and `performer render --models models:/...`
in a folder without one refuse in one line instead of leaving an empty mlflow.db where the user stands.
Only the writers (training stages, `performer models register` / `promote`) create the store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.tracking import lookup_tracking_uri, tracking_uri
from tests.test_scores import write_midi

REPO = Path(__file__).resolve().parents[1]
NO_STORE = "error: mlflow.db: no MLflow store here (run the training stages, or set MLFLOW_TRACKING_URI)"


def performer(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    clean.update(PYTHONPATH=str(REPO), MLFLOW_DISABLE_TELEMETRY="true", **env)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=folder, env=clean, capture_output=True, text=True, timeout=300
    )


def test_models_list_refuses_where_there_is_no_store(tmp_path):
    result = performer(tmp_path, "models", "list")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == NO_STORE
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no lock, nothing


@pytest.mark.slow
def test_models_list_refuses_a_missing_store_it_is_pointed_at(tmp_path):
    result = performer(tmp_path, "models", "list", "--tracking-uri", "sqlite:///other.db")
    assert result.returncode == 1 and result.stderr.strip().startswith("error: other.db: no MLflow store here")
    result = performer(tmp_path, "models", "list", MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'team.db'}")
    assert result.returncode == 1 and f"error: {tmp_path / 'team.db'}: no MLflow store here" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "models, with_params",
    [("models:/deep-performer@champion", False), ("models:/deep-performer-{name}@champion", True)],
)
def test_render_from_the_registry_refuses_where_there_is_no_store(tmp_path, models, with_params):
    write_midi(tmp_path / "tune.mid", [(i * 0.5, 0.5, 60 + i, 80) for i in range(4)])
    if with_params:  # the three-URI form needs the mel recipe of params.yaml
        shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = performer(tmp_path, "render", "tune.mid", "-o", "out.wav", "--models", models)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == NO_STORE
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no mlflow.db, no out.wav


def test_lookup_uses_a_store_that_exists_and_any_server(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(PipelineError, match="no MLflow store here"):
        lookup_tracking_uri(root=tmp_path)
    (tmp_path / "mlflow.db").touch()  # what the training stages created
    assert lookup_tracking_uri(root=tmp_path) == tracking_uri(tmp_path)
    assert lookup_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"  # a server: nothing to check
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert lookup_tracking_uri() == "http://mlflow.example:5000"
