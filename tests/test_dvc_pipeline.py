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

from tests.test_evaluation_rows import SYSTEMS as ROW_NAMES

pytestmark = pytest.mark.slow  # every test here runs `dvc repro` (the data stages, or every stage) in fresh processes

TINY = {
    "performers": ["aurora", "chiara"],
    "violin_pieces": 1,
    "chorale_pieces": 1,
    "max_seconds": 6,
    "sample_rate": 22050,
}


def run(cmd, cwd):
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        DVC_NO_ANALYTICS="1",
        PYTHONPATH=str(cwd),
    )
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
    shutil.copy(repo_root / ".dvcignore", root / ".dvcignore")
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
    # caches a fresh machine writes beside the code (bytecode, numba's kernels) are not stage inputs
    cache = root / "pipeline" / "alignment" / "__pycache__"
    cache.mkdir(exist_ok=True)
    # (names of no real module or kernel: numba must not load these random bytes in later stages)
    for name in ("scratch.cpython-311.pyc", "scratch.kernel-1.py311.nbi", "scratch.kernel-1.py311.1.nbc"):
        (cache / name).write_bytes(os.urandom(64))
    assert "up to date" in run(["dvc", "status", "--with-deps", "mel"], root)
    log = run(["dvc", "repro", "mel"], root)
    assert "Running stage" not in log
    assert "median_ms" in run(["dvc", "metrics", "show"], root)


def test_data_stages_reproduce_byte_for_byte(project):
    """A forced second run of mel writes the same bytes (np.savez stamped every member with the
    time, so data/features hashed differently on every run and every training stage re-ran)."""
    root, _ = project

    def hashes():
        import hashlib

        return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted((root / "data/features").iterdir())}

    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["mel"]["outs"]
    before = hashes()
    run(["dvc", "repro", "--force", "--single-item", "mel"], root)
    assert hashes() == before
    assert yaml.safe_load((root / "dvc.lock").read_text())["stages"]["mel"]["outs"] == lock


def test_changing_an_align_param_reruns_only_align_and_mel(project):
    root, _ = project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["align"]["band_seconds"] = 0.7
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = run(["dvc", "repro", "mel"], root)
    assert "Running stage 'align'" in log
    assert "Running stage 'prepare'" not in log and "Running stage 'resample'" not in log
    assert "up to date" in run(["dvc", "status", "--with-deps", "mel"], root).lower()


# ------------------------------------------------------------------ training stages + evaluate, tiny models

TINY_TRAIN = dict(max_steps=3, batch_size=2, validate_every=3, checkpoint_every=3)
TINY_TRANSFORMER = dict(d_model=32, attention_dim=16, ffn_dim=32, heads=2, dropout=0.0)
SYSTEMS = [
    "deep_performer",
    "w_o_note_wise_pe",
    "w_o_performer_embedding",
    "w_o_encoder",
    "w_o_harmonic_prior",
    "deep_performer_hifi_gan_v2",
    "hifi_gan_baseline",
    "performancenet",
    "vocoder_reconstruction",
    "vocoder_reconstruction_hifi_gan_v2",
    "griffin_lim_reconstruction",
    "recording",
    "constant_tempo",
    "constant_tempo_exact_tempo",
]
# the tiny corpus has one piece of each kind: split its four recordings (by recording) so one is tested
NO_NAMED_PIECES = {"test_pieces": [], "validation_pieces": []}
TINY_SPLIT = {
    "by": "recording",
    "test_share": 0.25,
    "validation_share": 0.25,
    "stratify": False,
    "seed": 0,
    **NO_NAMED_PIECES,
}
ABLATIONS = ("no_notewise_pe", "no_performer_embedding", "no_encoder", "no_harmonic_prior")
# the training stages with a params group of their own (the ablations train with train_synthesis's)
TRAINING_GROUPS = (
    "train_alignment",
    "train_synthesis",
    "train_hifigan",
    "train_hifigan_v2",
    "train_hifigan_baseline",
    "train_performancenet",
)


@pytest.fixture(scope="module")
def evaluated(project):
    """`dvc repro evaluate` with every model tiny and trained for 3 steps."""
    root, _ = project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train_alignment"]["model"] = dict(layers=1, **TINY_TRANSFORMER)
    params["train_synthesis"]["model"] = dict(encoder_layers=1, decoder_layers=1, **TINY_TRANSFORMER)
    params["train_hifigan"]["generator"] = {"channels": 16, "layers": 1}  # the source-filter vocoder
    params["train_hifigan_v2"]["generator"] = params["train_hifigan_baseline"]["generator"] = {
        "upsample_initial_channel": 16
    }
    for stage in ("train_hifigan", "train_hifigan_v2", "train_hifigan_baseline"):
        params[stage]["discriminator_start"] = 2  # and one GAN step each
    params["train_performancenet"]["model"] = {"channels": [8, 16, 16], "onoff_channels": 4, "bands": [2]}
    for stage in TRAINING_GROUPS:
        params[stage]["train"].update(TINY_TRAIN)
    params["train"]["log_every"] = 1  # the loop settings every training stage shares
    params["evaluate"].update(report_clips=1, bootstrap_resamples=200)
    params["split"] = TINY_SPLIT
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "OMP_NUM_THREADS": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        log = run(["dvc", "repro", "evaluate"], root)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return root, log


def test_repro_trains_every_system_and_evaluates_them_all(evaluated):
    root, log = evaluated
    for stage in (*TRAINING_GROUPS, "train_ablation@no_encoder", "evaluate"):
        assert f"Running stage '{stage}'" in log
    metrics = json.loads((root / "metrics/evaluate.json").read_text())
    assert metrics["clips"] >= 1 and metrics["test_recordings"] == 1
    # the exact model files evaluated (`performer models register` checks them against what it registers)
    from pipeline.io import file_md5

    assert metrics["models"]["synthesis"] == file_md5(root / "models/synthesis/model.pt")
    assert {"alignment", "hifigan", "hifigan_v2", "performancenet"} <= set(metrics["models"])
    for system in SYSTEMS[:-2]:  # every audio-producing system has its end-to-end mel error and note metrics
        assert metrics[system]["audio_mel_mse"] is not None, system
        assert 0 <= metrics[system]["multipitch_accuracy"] <= 1, system
        low, high = metrics[system]["audio_mel_mse_low"], metrics[system]["audio_mel_mse_high"]
        assert low <= metrics[system]["audio_mel_mse"] <= high, system
    assert metrics["recording"]["audio_mel_mse"] == 0 and metrics["recording"]["mr_stft"] == 0
    # the ceiling: the transcriber on the recording itself finds most of the score's notes
    assert metrics["recording"]["multipitch_accuracy"] > 0.5
    comparisons = metrics["differences"]
    assert "deep_performer_vs_hifi_gan_baseline" in comparisons and "deep_performer_vs_constant_tempo" in comparisons
    cell = comparisons["deep_performer_vs_performancenet"]["audio_mel_mse"]
    assert cell["low"] <= cell["difference"] <= cell["high"] and isinstance(cell["significant"], bool)
    for system in ("deep_performer", "hifi_gan_baseline", "performancenet"):
        assert metrics[system]["mel_mse"] > 0 and metrics[system]["audio_mel_mse"] > 0
    for system in ("deep_performer", "constant_tempo", "constant_tempo_exact_tempo"):
        assert metrics[system]["onset_error_ms"] >= 0 and metrics[system]["duration_error_ms"] >= 0
    table = pd.read_csv(root / "metrics/table2.csv", index_col=0)
    assert {"note_onset_f1", "note_onset_f1_low", "note_onset_f1_high"} <= set(table.columns)
    assert list(table.index) == [*ROW_NAMES, "Constant tempo", "Constant tempo (exact tempo)"]
    assert "±" in (root / "metrics/table2.md").read_text()
    shown = run(["dvc", "metrics", "show"], root)
    for system in SYSTEMS:
        assert f"{system}.audio_mel_mse" in shown or f"{system}.onset_error_ms" in shown, system
    html = (root / "reports/index.html").read_text()
    assert html.count("<audio") >= 8 and "PerformanceNet" in html and "HiFi-GAN baseline" in html


def test_evaluate_names_a_system_without_a_model_and_writes_nothing(evaluated):
    root, _ = evaluated
    model = root / "models/performancenet/model.pt"
    kept = model.with_suffix(".kept")
    model.rename(kept)
    before = (root / "metrics/evaluate.json").read_text()
    try:
        env = dict(os.environ, PYTHONPATH=str(root), MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}")
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "stage", "evaluate"], cwd=root, capture_output=True, text=True, env=env
        )
    finally:
        kept.rename(model)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "PerformanceNet" in lines[0] and "models/performancenet/model.pt" in lines[0], lines
    assert (root / "metrics/evaluate.json").read_text() == before


def test_training_is_deterministic_across_fresh_processes(evaluated):
    """The same stage, params and data in two new processes at one thread: the same losses."""
    root, _ = evaluated
    env = dict(
        os.environ, PYTHONPATH=str(root), MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}", OMP_NUM_THREADS="1"
    )
    runs, weights = [], []
    for _ in range(2):
        shutil.rmtree(root / "models/synthesis", ignore_errors=True)  # no checkpoint to resume from
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "stage", "train_synthesis"],
            cwd=root,
            capture_output=True,
            text=True,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        metrics = json.loads((root / "metrics/train_synthesis.json").read_text())
        curve = pd.read_csv(root / "plots/train_synthesis_loss.csv")
        runs.append(({k: v for k, v in metrics.items() if k != "steps_per_second"}, curve["loss"].tolist()))
        weights.append([(root / "models/synthesis" / f).read_bytes() for f in ("model.pt", "checkpoints/latest.pt")])
    assert runs[0] == runs[1]
    assert len(runs[0][1]) >= 3 and runs[0][0]["val_loss"] > 0
    assert weights[0] == weights[1]  # the same bytes, not only the same tensors
    # and the model folder's DVC hash is the one `dvc repro` recorded (its MLflow run ids are dvcignored)
    status = json.loads(run(["dvc", "status", "train_synthesis", "--json"], root).strip().splitlines()[-1] or "{}")
    changed_outs = {
        path
        for entries in status.values()
        for e in entries
        if isinstance(e, dict)
        for path in e.get("changed outs", {})
    }
    assert "models/synthesis" not in changed_outs, status


# ------------------------------------------------------------------ a DAG DVC can trust


def _changed(root) -> dict[str, set[str]]:
    """``{stage: {what changed}}`` of ``dvc status``: changed params (``params:KEY``) and code deps."""
    status = json.loads(run(["dvc", "status", "--json"], root).strip().splitlines()[-1] or "{}")
    out: dict[str, set[str]] = {}
    for stage, entries in status.items():
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            for path, change in entry.get("changed deps", {}).items():
                if isinstance(change, dict):  # params.yaml: {"mel": "modified"} or {"mel.hop_length": "modified"}
                    out.setdefault(stage, set()).update(f"params:{k}" for k in change)
                else:
                    out.setdefault(stage, set()).add(path)
    return out


def _edit_params(root, change) -> str:
    text = (root / "params.yaml").read_text()
    params = yaml.safe_load(text)
    change(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return text


def _newly_changed(root, before: dict[str, set[str]]) -> dict[str, set[str]]:
    """What ``dvc status`` reports beyond ``before`` (earlier tests here leave some stages stale on purpose)."""
    now = _changed(root)
    return {stage: what - before.get(stage, set()) for stage, what in now.items() if what - before.get(stage, set())}


READERS_OF_CLIPS = {*TRAINING_GROUPS, "evaluate"} | {f"train_ablation@{n}" for n in ABLATIONS}


@pytest.mark.parametrize(
    "key, value, stages",
    [
        # clips are cut by the training stages and evaluate, not by prepare, resample, align or mel
        ("clip_frames", 300, READERS_OF_CLIPS),
        ("hop_length", 200, READERS_OF_CLIPS | {"align", "mel"}),
    ],
)
def test_a_mel_setting_reruns_exactly_the_stages_that_read_it(evaluated, key, value, stages):
    root, _ = evaluated
    before = _changed(root)
    text = _edit_params(root, lambda p: p["mel"].update({key: value}))
    try:
        changed = _newly_changed(root, before)
    finally:
        (root / "params.yaml").write_text(text)
    assert set(changed) == stages, changed
    # the stages that read the whole group see it change; mel (which lists the recipe's keys) sees the key
    assert all(c in ({"params:mel"}, {f"params:mel.{key}"}) for c in changed.values()), changed
    assert _changed(root) == before


def test_touching_a_module_reruns_only_the_stages_that_import_it(evaluated):
    root, _ = evaluated
    before = _changed(root)
    report = root / "pipeline" / "evaluation" / "report.py"
    text = report.read_text()
    report.write_text(text + "\n# touched\n")
    try:
        assert _newly_changed(root, before) == {"evaluate": {"pipeline/evaluation/report.py"}}
    finally:
        report.write_text(text)
    assert _changed(root) == before
