"""The MLflow model registry: candidate registration, the champion promotion rule, the composite model
(`performer render --models models:/deep-performer@champion`, pyfunc, `mlflow models serve`), `performer models`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
import soundfile as sf

from _servers import free_port, stop, wait_until_answers
from pipeline.errors import PipelineError
from pipeline.inference.runtime.render import render_score
from pipeline.io import file_md5
from pipeline.registry.loading import load_models
from pipeline.scores import read_score
from tests.test_cli import assert_one_line_error
from tests.test_inference import NAMES, performer_cli, small_models, write_models
from tests.test_scores import write_midi

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")

ALL = ("deep-performer", "deep-performer-alignment", "deep-performer-synthesis", "deep-performer-hifigan")
EVALUATION = {
    "clips": 13,
    "held_out_recordings": 2,
    "deep_performer": {
        "audio_mel_mse": 1.8262,
        "mel_mse": 1.1297,
        "onset_f1": 0.3348,
        "onset_error_ms": 68.8444,
        "duration_error_ms": None,
    },
    "vocoder_reconstruction": {"audio_mel_mse": 1.3155},
    "performancenet": {"audio_mel_mse": 6.8256, "mel_mse": 6.7641},
}


def evaluation(audio_mel_mse: float, mel_mse: float) -> dict:
    data = json.loads(json.dumps(EVALUATION))
    data["deep_performer"].update(audio_mel_mse=audio_mel_mse, mel_mse=mel_mse)
    return data


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Three tiny models logged as training runs the way run_training does (MlflowTracker, mlflow.json), and
    their model.pt files."""
    from pipeline.tracking import MlflowTracker

    base = tmp_path_factory.mktemp("trained")
    models = small_models(seed=5)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{base / 'mlflow.db'}")
        for name, module in zip(
            ("alignment", "synthesis", "hifigan"), (models.alignment, models.synthesis, models.vocoder)
        ):
            tracker = MlflowTracker("deep-performer", f"train_{name}", base / "models" / name, root=base)
            uri = tracker.log_model(module, name)
            (base / "models" / name / "mlflow.json").write_text(
                json.dumps({"run_id": tracker.run_id, "model_uri": uri})
            )
            tracker.end()
    write_models(base / "models", models)
    midi = base / "tune.mid"
    write_midi(midi, [(i * 0.5, 0.5, 60 + (i % 7), 80) for i in range(12)], tempo_bpm=100)
    return {"base": base, "models": models, "midi": midi}


@pytest.fixture
def store(trained, tmp_path, monkeypatch):
    """A project root with the trained models' mlflow.json and model.pt files, a copy of the tracking store, no
    registry yet."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "params.yaml", root / "params.yaml")  # the mel recipe registered with the models
    for name in ("alignment", "synthesis", "hifigan"):
        (root / "models" / name).mkdir(parents=True)
        shutil.copy(trained["base"] / "models" / name / "mlflow.json", root / "models" / name)
        shutil.copy(trained["base"] / "models" / name / "model.pt", root / "models" / name)
    shutil.copy(trained["base"] / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # not the stores an earlier test set
    mlflow.set_registry_uri(uri)
    return {**trained, "root": root, "uri": uri}


def evaluated_hashes(root: Path) -> dict[str, str]:
    """What the evaluate stage records of the models it evaluated: ``{folder: md5 of model.pt}``."""
    return {p.parent.name: file_md5(p) for p in sorted((root / "models").glob("*/model.pt"))}


def write_evaluation(root: Path, audio_mel_mse: float, mel_mse: float) -> None:
    """metrics/evaluate.json as the evaluate stage writes it, of the models now in ``root/models``."""
    (root / "metrics").mkdir(exist_ok=True)
    data = {**evaluation(audio_mel_mse, mel_mse), "models": evaluated_hashes(root)}
    (root / "metrics" / "evaluate.json").write_text(json.dumps(data))


def aliases(client) -> dict[str, dict[str, str]]:
    """{registered name: {alias: version}}."""
    return {name: {alias: str(v) for alias, v in client.get_registered_model(name).aliases.items()} for name in ALL}


def everywhere(**by_alias) -> dict[str, dict[str, str]]:
    return {name: {alias: str(version) for alias, version in by_alias.items()} for name in ALL}


# ------------------------------------------------------------------------------------------ register


def test_register_candidate_versions_aliases_and_tags(store):
    from mlflow import MlflowClient

    from pipeline.registry.promotion import register_candidate

    root = store["root"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "-c",
            "user.email=t@example.com",
            "-c",
            "user.name=t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        check=True,
    )
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    write_evaluation(root, 1.8262, 1.1297)

    assert register_candidate(root) == dict.fromkeys(ALL, 1)
    client = MlflowClient(store["uri"], store["uri"])
    assert aliases(client) == everywhere(candidate=1)
    for name in ALL:
        tags = client.get_model_version(name, "1").tags
        assert tags["deep_performer.audio_mel_mse"] == "1.8262"
        assert tags["deep_performer.mel_mse"] == "1.1297"
        assert tags["deep_performer.onset_f1"] == "0.3348"
        assert tags["vocoder_reconstruction.audio_mel_mse"] == "1.3155"
        assert tags["clips"] == "13"
        assert "deep_performer.duration_error_ms" not in tags and "performancenet.mel_mse" not in tags
        assert tags["git_commit"] == commit and len(commit) == 40
    for name in ("alignment", "synthesis", "hifigan"):  # each component is the training run's own model
        info = json.loads((root / "models" / name / "mlflow.json").read_text())
        version = client.get_model_version(f"deep-performer-{name}", "1")
        assert version.run_id == info["run_id"] == version.tags["source_run_id"]
        assert version.tags.get("component.deep-performer-alignment") is None
    composite = client.get_model_version("deep-performer", "1")
    assert {k: v for k, v in composite.tags.items() if k.startswith("component.")} == {
        "component.deep-performer-alignment": "1",
        "component.deep-performer-synthesis": "1",
        "component.deep-performer-hifigan": "1",
    }
    run = client.get_run(composite.run_id)  # the registration run keeps the metrics and the evaluation file
    assert run.data.metrics["deep_performer.audio_mel_mse"] == pytest.approx(1.8262)
    assert [a.path for a in client.list_artifacts(run.info.run_id) if a.path.endswith(".json")] == ["evaluate.json"]

    write_evaluation(root, 1.9, 1.2)  # a second registration: new versions, the candidate alias moves
    assert register_candidate(root, tracking_uri=store["uri"]) == dict.fromkeys(ALL, 2)
    assert aliases(client) == everywhere(candidate=2)
    assert client.get_model_version("deep-performer", "2").tags["deep_performer.audio_mel_mse"] == "1.9"
    assert client.get_model_version("deep-performer", "1").tags["deep_performer.audio_mel_mse"] == "1.8262"


@pytest.mark.slow
def test_missing_inputs_are_one_line_errors_and_register_nothing(store):
    from pipeline.registry.promotion import list_versions, promote_if_better, register_candidate

    root = store["root"]
    with pytest.raises(PipelineError, match="run the evaluate stage first") as err:
        register_candidate(root)
    assert "evaluate.json" in str(err.value) and "\n" not in str(err.value)
    result = performer_cli("models", "register", "--root", root)
    assert_one_line_error(result, "evaluate.json", "run the evaluate stage first")

    write_evaluation(root, 1.8, 1.1)
    (root / "models" / "synthesis" / "mlflow.json").unlink()
    with pytest.raises(PipelineError, match="dvc repro train_synthesis"):
        register_candidate(root)
    (root / "metrics" / "evaluate.json").write_text(json.dumps({"deep_performer": {"mel_mse": 1.0}}))
    with pytest.raises(PipelineError, match=r"no deep_performer.audio_mel_mse"):
        register_candidate(root)
    assert list_versions() == []
    with pytest.raises(PipelineError, match=r"no candidate version.*performer models register"):
        promote_if_better()
    assert_one_line_error(performer_cli("models", "promote"), "no candidate version")


@pytest.mark.slow
def test_register_refuses_an_evaluation_of_other_models(store):
    """Training re-ran, evaluate did not: the old numbers must not be tagged on the new models."""
    from mlflow import MlflowClient

    from pipeline.models.persistence import save_model
    from pipeline.registry.promotion import list_versions, register_candidate

    root, client = store["root"], MlflowClient(store["uri"], store["uri"])
    write_evaluation(root, 1.8262, 1.1297)
    assert register_candidate(root) == dict.fromkeys(ALL, 1)  # the evaluated models themselves: registered
    synthesis_md5 = file_md5(root / "models" / "synthesis" / "model.pt")
    assert client.get_model_version("deep-performer-synthesis", "1").tags["model_md5"] == synthesis_md5

    retrained = small_models(seed=6).synthesis  # train_synthesis re-ran: other weights in model.pt
    save_model(root / "models" / "synthesis" / "model.pt", retrained)
    assert file_md5(root / "models" / "synthesis" / "model.pt") != synthesis_md5
    with pytest.raises(PipelineError, match=r"evaluates other models than models/synthesis/model\.pt") as err:
        register_candidate(root)
    assert "dvc repro evaluate" in str(err.value) and "\n" not in str(err.value)
    result = performer_cli("models", "register", cwd=root)
    assert_one_line_error(result)
    assert result.stderr.strip() == (
        "error: metrics/evaluate.json: evaluates other models than models/synthesis/model.pt "
        "(run `dvc repro evaluate` first)"
    )
    assert {(r["name"], r["version"]) for r in list_versions()} == {(name, 1) for name in ALL}  # nothing new
    assert aliases(client) == everywhere(candidate=1)

    write_evaluation(root, 1.9, 1.2)  # evaluate re-ran on the new models: registered
    assert register_candidate(root) == dict.fromkeys(ALL, 2)
    assert client.get_model_version("deep-performer-synthesis", "2").tags["model_md5"] != synthesis_md5


@pytest.mark.slow
def test_register_refuses_an_evaluation_that_records_no_models(store):
    from pipeline.registry.promotion import list_versions, register_candidate

    root = store["root"]
    write_evaluation(root, 1.8, 1.1)
    data = json.loads((root / "metrics" / "evaluate.json").read_text())
    del data["models"]  # written by an evaluate stage from before the models were recorded
    (root / "metrics" / "evaluate.json").write_text(json.dumps(data))
    with pytest.raises(PipelineError, match=r"records no hashes of the models it evaluated.*dvc repro evaluate"):
        register_candidate(root)
    result = performer_cli("models", "register", cwd=root)
    assert_one_line_error(result, "metrics/evaluate.json", "records no hashes", "`dvc repro evaluate`")

    write_evaluation(root, 1.8, 1.1)
    (root / "models" / "hifigan" / "model.pt").unlink()
    with pytest.raises(PipelineError, match=r"no trained hifigan model \(run `dvc repro train_hifigan`\)"):
        register_candidate(root)
    assert list_versions() == []


# ------------------------------------------------------------------------------------------ promote


@pytest.mark.slow
def test_promotion_rule_first_worse_tie_better(store):
    from mlflow import MlflowClient

    from pipeline.registry.promotion import list_versions, promote_if_better, register_candidate

    root, client = store["root"], MlflowClient(store["uri"], store["uri"])
    write_evaluation(root, 1.8262, 1.1297)
    register_candidate(root)
    assert promote_if_better() is True  # no champion yet: the first candidate becomes champion
    assert aliases(client) == everywhere(candidate=1, champion=1)
    assert promote_if_better() is False  # the candidate already is the champion

    write_evaluation(root, 2.0, 1.0)  # worse on audio_mel_mse (better on mel_mse)
    register_candidate(root)
    assert promote_if_better() is False
    assert aliases(client) == everywhere(candidate=2, champion=1)

    write_evaluation(root, 1.8262, 1.5)  # a tie on the default metric keeps the champion
    register_candidate(root)
    assert promote_if_better(metric="deep_performer.audio_mel_mse") is False
    assert aliases(client) == everywhere(candidate=3, champion=1)

    write_evaluation(root, 1.8261, 1.2)  # strictly better, by a hair
    assert register_candidate(root) == dict.fromkeys(ALL, 4)
    assert promote_if_better() is True
    assert aliases(client) == everywhere(candidate=4, champion=4, **{"previous-champion": 1})
    assert client.get_model_version("deep-performer-synthesis", "4").tags["promoted_at"]

    write_evaluation(root, 1.9, 1.0)  # worse on the default metric, better on mel_mse: the metric decides
    register_candidate(root)
    assert promote_if_better() is False
    assert aliases(client)["deep-performer"] == {"candidate": "5", "champion": "4", "previous-champion": "1"}
    result = performer_cli("models", "promote", "--metric", "deep_performer.mel_mse")
    assert result.returncode == 0 and "promoted" in result.stdout, result.stderr
    assert aliases(client) == everywhere(candidate=5, champion=5, **{"previous-champion": 4})
    with pytest.raises(PipelineError, match=r"has no deep_performer.pitch_accuracy tag"):
        promote_if_better(metric="deep_performer.pitch_accuracy")

    rows = {(r["name"], r["version"]): r for r in list_versions()}
    assert len(rows) == 20
    assert rows[("deep-performer", 5)]["aliases"] == ["candidate", "champion"]
    assert rows[("deep-performer", 4)]["aliases"] == ["previous-champion"]
    assert rows[("deep-performer-hifigan", 2)]["metrics"]["deep_performer.audio_mel_mse"] == 2.0
    assert rows[("deep-performer", 3)]["components"] == {
        "deep-performer-alignment": "3",
        "deep-performer-synthesis": "3",
        "deep-performer-hifigan": "3",
    }

    listing = performer_cli("models", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == [
        "model",
        "version",
        "aliases",
        "deep_performer.audio_mel_mse",
        "deep_performer.mel_mse",
        "git_commit",
        "registered",
    ]
    assert len(lines) == 21
    assert lines[1].split()[:5] == ["deep-performer", "5", "candidate,champion", "1.9000", "1.0000"]
    assert lines[2].split()[:5] == ["deep-performer", "4", "previous-champion", "1.8261", "1.2000"]
    assert lines[5].split()[:5] == ["deep-performer", "1", "-", "1.8262", "1.1297"]
    assert lines[6].split()[:3] == ["deep-performer-alignment", "5", "candidate,champion"]
    as_json = json.loads(performer_cli("models", "list", "--json").stdout)
    assert as_json[0]["metrics"]["deep_performer.mel_mse"] == 1.0 and as_json[0]["aliases"] == ["candidate", "champion"]


# ------------------------------------------------------------------------------------------ the composite model


def registered_champion(store) -> None:
    from pipeline.registry.promotion import promote_if_better, register_candidate

    write_evaluation(store["root"], 1.8, 1.1)
    register_candidate(store["root"])
    assert promote_if_better() is True


@pytest.mark.slow
def test_composite_champion_renders_like_the_trained_models(store, tmp_path):
    import mlflow.pyfunc
    import pandas as pd

    from pipeline.registry.serving import decode_audio

    registered_champion(store)
    notes = read_score(store["midi"])
    expected = render_score(store["models"], notes, "ben", 120.0).audio
    default = render_score(store["models"], notes, NAMES[0]).audio
    assert len(expected) > 16000 and len(default) != len(expected)

    for uri in ("models:/deep-performer@champion", "models:/deep-performer/1"):
        loaded = load_models(uri, None)  # a composite model carries its own mel recipe
        assert loaded.performers == NAMES and loaded.source == uri
        np.testing.assert_allclose(render_score(loaded, notes, "ben", 120.0).audio, expected, atol=1e-6)
    with pytest.raises(PipelineError, match="cannot load the model from MLflow"):
        load_models("models:/deep-performer@nosuchalias", None)

    # `performer render --model models:/deep-performer@champion`
    wav = tmp_path / "out.wav"
    result = performer_cli(
        "render",
        store["midi"],
        "-o",
        wav,
        "--model",
        "models:/deep-performer@champion",
        "--performer",
        "ben",
        "--tempo",
        120,
    )
    assert result.returncode == 0, result.stderr
    audio, rate = sf.read(wav, dtype="float32")
    assert rate == 16000 and len(audio) == len(expected)
    np.testing.assert_allclose(audio, expected, atol=1e-4)

    # the pyfunc on its own: a path or base64 bytes in, 16 kHz WAV out (defaults: first performer, score tempo)
    pyfunc = mlflow.pyfunc.load_model("models:/deep-performer@champion")
    b64 = base64.b64encode(store["midi"].read_bytes()).decode()
    out = pyfunc.predict(
        pd.DataFrame({"score": [str(store["midi"]), b64], "performer": ["ben", None], "tempo": [120.0, None]})
    )
    assert list(out["samples"]) == [len(expected), len(default)] and list(out["sample_rate"]) == [16000, 16000]
    first, rate = decode_audio(out["audio"][0])
    assert rate == 16000
    np.testing.assert_allclose(first, expected, atol=1e-6)
    np.testing.assert_allclose(decode_audio(out["audio"][1])[0], default, atol=1e-6)
    with pytest.raises(Exception, match="neither an existing file nor base64"):
        pyfunc.predict(pd.DataFrame({"score": ["no-such-score.mid"]}))


def post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.mark.server
@pytest.mark.slow
def test_mlflow_models_serve_the_champion(store, tmp_path):
    from pipeline.registry.serving import decode_audio

    registered_champion(store)
    notes = read_score(store["midi"])
    expected = render_score(store["models"], notes, "ana", 90.0).audio
    port = free_port()
    # mlflow runs `uvicorn` from PATH: the one beside this Python, as in an activated venv
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {
        **os.environ,
        "PATH": path,
        "OMP_NUM_THREADS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DEEP_PERFORMER_DEVICE": "cpu",
    }
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            "models:/deep-performer@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/ping", server, 180, tmp_path / "serve.log")
        b64 = base64.b64encode(store["midi"].read_bytes()).decode()
        status, answer = post(
            f"http://127.0.0.1:{port}/invocations",
            {"dataframe_records": [{"score": b64, "performer": "ana", "tempo": 90.0}]},
        )
        assert status == 200, answer
        [prediction] = answer["predictions"]
        audio, rate = decode_audio(prediction["audio"])
        assert rate == prediction["sample_rate"] == 16000
        assert len(audio) == prediction["samples"] == len(expected)
        np.testing.assert_allclose(audio, expected, atol=1e-5)
        status, answer = post(
            f"http://127.0.0.1:{port}/invocations", {"dataframe_records": [{"score": b64, "performer": "zed"}]}
        )
        assert status == 400 and "unknown performer 'zed'" in answer["message"], answer
    finally:
        stop(server)
        log.close()
