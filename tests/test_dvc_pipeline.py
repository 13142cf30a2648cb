"""`dvc repro` of the data stages on a tiny built-in corpus, in a temporary copy of the project."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

TINY = {"performers": ["aurora", "chiara"], "violin_pieces": 1, "chorale_pieces": 1, "max_seconds": 6,
        "sample_rate": 22050}


def run(cmd, cwd):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", PYTHONPATH=str(cwd))
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory, repo_root):
    root = tmp_path_factory.mktemp("project")
    for name in ("pipeline", "stages"):
        shutil.copytree(repo_root / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo_root / "dvc.yaml", root / "dvc.yaml")
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["data"]["builtin"].update(TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "config", "core.analytics", "false"], root)
    first = run(["dvc", "repro", "mel"], root)  # the data stages (mel and everything upstream)
    return root, first


def test_repro_runs_every_data_stage_and_writes_outputs(project):
    root, log = project
    for stage in ("prepare", "resample", "align", "mel"):
        assert f"Running stage '{stage}'" in log
    index = pd.read_csv(root / "data/features/index.csv")
    assert len(index) == 4 and set(index.performer) == {"aurora", "chiara"}
    assert sorted(index.performer_id.unique()) == [0, 1]
    metrics = json.loads((root / "metrics/align.json").read_text())
    assert metrics["monophonic"]["notes"] >= 5 and metrics["polyphonic"]["notes"] >= 20
    assert metrics["monophonic"]["median_ms"] < 50
    assert (root / "plots/mel_example.png").stat().st_size > 10_000
    import numpy as np

    data = np.load(root / "data/features" / f"{index.id[0]}.npz")
    assert data["mel"].shape == (80, index.frames[0])
    assert np.all(data["offset_frame"] > data["onset_frame"])
    assert (root / "data/audio16k/manifest.csv").exists()


def test_second_repro_does_nothing_and_metrics_show(project):
    root, _ = project
    log = run(["dvc", "repro", "mel"], root)
    assert "Running stage" not in log
    assert "median_ms" in run(["dvc", "metrics", "show"], root)


def test_changing_an_align_param_reruns_only_align_and_mel(project):
    root, _ = project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["align"]["band_seconds"] = 0.7
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = run(["dvc", "repro", "mel"], root)
    assert "Running stage 'align'" in log
    assert "Running stage 'prepare'" not in log and "Running stage 'resample'" not in log
    assert "up to date" in run(["dvc", "status", "--with-deps", "mel"], root).lower()
