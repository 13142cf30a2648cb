"""MLflow tracking: one run per training stage in the embedded SQLite store.

The store is ``sqlite:///mlflow.db`` in the project root unless ``MLFLOW_TRACKING_URI`` names
another (a team server, say). Only writers (the training stages, evaluate, `performer models register` and
``promote``) create a SQLite store; a look-up (:func:`lookup_tracking_uri`) refuses a missing one. A stage that is interrupted and re-run continues the same MLflow
run (its id is kept beside the checkpoints). Runs are tagged with the git commit and the hashes
of the stage's DVC inputs, so a logged model can be traced to the exact data it was trained on.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.config import MelConfig
from pipeline.errors import PipelineError

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def tracking_uri(root: str | Path = ".") -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(Path(root) / 'mlflow.db').resolve()}"


def _sqlite_file(uri: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` store (relative or absolute), None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def lookup_tracking_uri(uri: str | None = None, root: str | Path = ".") -> str:
    """The store to look things up in (``uri``, else :func:`tracking_uri`): MLflow would create a missing
    SQLite file, an empty store wherever the user stands, so a missing one is refused instead."""
    chosen = uri or tracking_uri(root)
    path = _sqlite_file(chosen)
    if path is not None and not path.is_file():
        shown = path if uri or os.environ.get("MLFLOW_TRACKING_URI") else Path(root) / "mlflow.db"
        raise PipelineError("no MLflow store here (run the training stages, or set MLFLOW_TRACKING_URI)", shown)
    return chosen


@contextlib.contextmanager
def _store_lock(uri: str):
    """Hold an exclusive lock beside a SQLite store (``mlflow.db.lock``) while it is set up.

    Stages that start at the same time (the `reproduce` flow runs the training stages in parallel) would
    otherwise race to create the store's tables or the same experiment, and all but one fail.
    """
    path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else None
    if not path or path == ":memory:":
        yield
        return
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_experiment(experiment: str, uri: str) -> None:
    """Point MLflow at ``uri`` and make ``experiment`` the active one, creating store and experiment if
    needed; safe when several processes do it at once (a lock for SQLite, a second try for a server)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(uri)
    with _store_lock(uri):
        try:
            mlflow.set_experiment(experiment)
        except MlflowException:  # another client created it between our lookup and our create
            time.sleep(1.0)
            mlflow.set_experiment(experiment)


def git_commit(root: str | Path = ".") -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def dvc_input_hashes(stage: str, root: str | Path = ".") -> dict[str, str]:
    """``{dep path: md5}`` of ``stage``'s dependencies as recorded in ``root``/dvc.lock (empty if unknown).

    Paths are as the lock spells them: relative to ``root``, so a job's pipeline under ``jobs/`` has
    ``../../pipeline/...`` beside its own ``params.yaml``.
    """
    lock = Path(root) / "dvc.lock"
    if not lock.is_file():
        return {}
    data = yaml.safe_load(lock.read_text()) or {}
    deps = data.get("stages", {}).get(stage, {}).get("deps", [])
    return {d["path"]: str(d.get("md5", d.get("hash", ""))) for d in deps if "path" in d}


def _dvc_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return None


def dvc_dep_tags(stage: str, root: str | Path = ".") -> dict[str, str]:
    """MLflow tags ``dvc_dep:<path>`` -> md5 of ``stage``'s dependencies, each path relative to the DVC
    project's root.

    Why not the lock's own spelling: MLflow refuses a tag key that normalises to another name
    (``../../pipeline/x.py``), and a job's ``params.yaml`` and the project's must stay two tags.
    """
    here = Path(root).resolve()
    top = _dvc_root(here)
    tags = {}
    for path, digest in dvc_input_hashes(stage, root).items():
        full = Path(os.path.normpath(here / path))
        if top is not None and full.is_relative_to(top):
            name = full.relative_to(top).as_posix()
        else:  # outside any DVC project: keep it unique without a '..' segment
            name = os.path.normpath(path).replace("..", "_up_")
        tags[f"dvc_dep:{name}"] = digest
    return tags


class MlflowTracker:
    """The Tracker the training loop logs to; only rank 0 creates one."""

    def __init__(
        self,
        experiment: str,
        run_name: str,
        run_dir: str | Path,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        root: str | Path = ".",
        mel: MelConfig | None = None,
    ) -> None:
        """``mel``: the recipe of the mels and audio the run logs as examples (:meth:`log_examples`)."""
        import mlflow

        self.mlflow = mlflow
        self.mel = mel
        open_experiment(experiment, tracking_uri(root))
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        id_file = self.run_dir / "mlflow_run_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else None
        try:
            self.run = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name)
        except Exception:  # noqa: BLE001  (the run was deleted or the store changed: start afresh)
            self.run = mlflow.start_run(run_name=run_name)
        id_file.write_text(self.run.info.run_id)
        if params and not run_id:
            mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
        all_tags = {"git_commit": git_commit(root), **(tags or {})}
        mlflow.set_tags(all_tags)

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)}, step=step)

    def log_examples(self, examples: dict[str, Any], step: int) -> None:
        """``mel/<name>``: (n_mels, frames) arrays -> PNG; ``audio/<name>``: (samples,) at the mel recipe's
        rate -> WAV."""
        from pipeline.audio import write_audio
        from pipeline.plots import plot_mel_with_notes

        if self.mel is None:
            raise ValueError("this run was opened without a mel recipe: it cannot log mel or audio examples")

        with tempfile.TemporaryDirectory() as tmp:
            for key, value in examples.items():
                kind, _, name = key.partition("/")
                if kind == "mel":
                    path = Path(tmp) / f"{name}.png"
                    plot_mel_with_notes(path, np.asarray(value), None, self.mel, title=f"{name} (step {step})")
                elif kind == "audio":
                    path = Path(tmp) / f"{name}.wav"
                    write_audio(path, np.asarray(value, dtype=np.float32), self.mel.sample_rate)
                else:
                    continue
                self.mlflow.log_artifact(str(path), artifact_path=f"examples/step_{step:07d}")

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_model(self, model, name: str) -> str:
        """Log a torch module (pickle format: variable input lengths keep working); returns its URI."""
        import mlflow.pytorch

        info = mlflow.pytorch.log_model(
            model,
            name=name,
            serialization_format="pickle",
            pip_requirements=["torch==2.13.0", "numpy", "librosa"],
        )
        return info.model_uri

    def end(self, status: str = "FINISHED") -> None:
        self.mlflow.end_run(status=status)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
