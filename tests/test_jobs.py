"""Second jobs (scripts/jobs.py): jobs/<name>/dvc.yaml generated from dvc.yaml and the job's params overlay;
parameter overlays (pipeline.config.load_params); the flow reading one pipeline file of the project."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_params
from pipeline.errors import PipelineError
from pipeline.flows.dag import read_dag

REPO = Path(__file__).resolve().parents[1]
JOB = REPO / "jobs" / "real-violin"
sys.path.insert(0, str(REPO / "scripts"))
import jobs  # noqa: E402  (scripts/jobs.py)


def dvc_project(root: Path) -> None:
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    bin_dir = Path(sys.executable).parent
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([bin_dir / "dvc", "init", "-q"], cwd=root, check=True, env=env)


def test_every_job_pipeline_is_what_the_script_writes():
    assert jobs.job_folders() == [JOB]
    assert (JOB / "dvc.yaml").read_text() == jobs.job_pipeline(JOB), "run: python scripts/jobs.py --write"
    assert jobs.main([]) == 0


def test_the_job_pipeline_is_the_main_one_run_in_the_job_folder(tmp_path):
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(JOB, tmp_path / "jobs" / "real-violin", ignore=shutil.ignore_patterns("dvc.lock", "data", "models"))
    dvc_project(tmp_path)
    main = read_dag(tmp_path)
    job = read_dag(tmp_path, "jobs/real-violin/dvc.yaml")
    # the same stages and edges, named as in their own file; nothing of the other pipeline comes along
    assert list(job.stages) == list(main.stages) and job.edges == main.edges and len(job.stages) >= 13
    folder = (tmp_path / "jobs" / "real-violin").resolve()
    for name, node in job.stages.items():
        assert Path(node.wdir).resolve() == folder, name
        assert all(out.startswith("jobs/real-violin/") for out in node.outs), (name, node.outs)
        assert not set(node.outs) & set(main.stages[name].outs)  # neither job overwrites the other
        for cmd, main_cmd in zip(node.cmd, main.stages[name].cmd):
            # the base, then the overlay; every path of the command as in the main job (relative to the folder)
            assert cmd.replace(" --params ../../params.yaml --params params.yaml", "") == main_cmd
    # code deps reach the project's code; params tracked in both files where the overlay sets them
    spec = yaml.safe_load((JOB / "dvc.yaml").read_text())["stages"]
    assert "../../pipeline/datasets/bach_violin.py" in spec["prepare"]["deps"]
    assert spec["prepare"]["params"] == [{"../../params.yaml": ["data"]}, {"params.yaml": ["data"]}]
    assert spec["mel"]["params"] == [
        {"../../params.yaml": yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["mel"]["params"]}
    ]
    assert {"params.yaml": ["split"]} in spec["train_alignment"]["params"]
    with pytest.raises(PipelineError, match=r"jobs/nope/dvc\.yaml: pipeline file not found"):
        read_dag(tmp_path, "jobs/nope/dvc.yaml")


def test_a_stale_job_pipeline_fails_the_check(tmp_path, monkeypatch):
    root = tmp_path
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, root / name)
    (root / "jobs" / "x").mkdir(parents=True)
    (root / "jobs" / "x" / "params.yaml").write_text("evaluate: {clips: 4}\n")
    monkeypatch.setattr(jobs, "ROOT", root)
    assert jobs.main([]) == 1  # never written
    assert jobs.main(["--write"]) == 0 and jobs.main([]) == 0
    spec = yaml.safe_load((root / "jobs" / "x" / "dvc.yaml").read_text())["stages"]
    assert {"params.yaml": ["evaluate"]} in spec["evaluate"]["params"]
    others = [s.get("do", s).get("params") for n, s in spec.items() if n != "evaluate"]
    assert all(len(p) == 1 for p in others if p)  # only evaluate reads the overlay
    (root / "params.yaml").write_text((root / "params.yaml").read_text().replace("n_mels: 80", "n_mels: 64"))
    assert jobs.main([]) == 0  # params values live in params.yaml, not in the generated file
    pipeline = (root / "dvc.yaml").read_text()
    (root / "dvc.yaml").write_text(pipeline.replace("--out data/raw", "--out data/raw2", 1))
    assert jobs.main([]) == 1


def test_overlay_puts_only_what_differs_over_the_base(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("data: {source: bach-violin, root: /somewhere}\nevaluate: {clips: 7}\n")
    base = load_params(REPO / "params.yaml")
    params = load_params(REPO / "params.yaml", overlay)
    assert (params.data.source, params.data.root, params.evaluate.clips) == ("bach-violin", "/somewhere", 7)
    assert params.mel == base.mel and params.data.download_dir == base.data.download_dir  # the rest: the base's


def test_overlay_errors_name_the_file_and_the_setting(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("mel: 16000\n")  # a group turned into a value
    with pytest.raises(PipelineError, match=r"overlay\.yaml: params\.mel is a group of settings"):
        load_params(REPO / "params.yaml", overlay)
    overlay.write_text("mel: {sample_rat: 16000}\n")  # a typo: the merged whole is checked
    with pytest.raises(PipelineError, match=r"params\.yaml \+ .*overlay\.yaml: .*sample_rat"):
        load_params(REPO / "params.yaml", overlay)
    with pytest.raises(PipelineError, match="not found"):
        load_params(REPO / "params.yaml", tmp_path / "missing.yaml")


def test_the_real_job_reads_the_shared_release():
    params = load_params(REPO / "params.yaml", JOB / "params.yaml")
    assert params.data.source == "bach-violin"
    root = (JOB / str(params.data.root)).resolve()  # relative to the job folder, where its stages run
    assert (root / "info.csv").is_file(), f"the Bach Violin release is not at {root}"


def test_a_job_folder_runs_with_the_project_params_and_its_overlay():
    from pipeline.config import load_mel, params_chain

    assert params_chain(JOB) == [REPO / "params.yaml", JOB / "params.yaml"]
    assert params_chain(REPO) == [REPO / "params.yaml"]
    assert load_mel(*params_chain(JOB)) == load_params(REPO / "params.yaml").mel  # what the registry stores
