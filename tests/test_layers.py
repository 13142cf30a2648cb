"""The library's layers (.importlinter, docs/architecture.md) are a contract: lint-imports checks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--config", str(root / ".importlinter"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
    )


def test_no_module_imports_from_a_layer_above_it_and_the_runtime_no_torch():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 kept, 0 broken" in result.stdout


def copy_project(folder: Path) -> None:
    for name in ("pipeline", "stages"):
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", folder)


def test_an_upward_import_breaks_the_contract(tmp_path):
    copy_project(tmp_path)
    # a model reaching up into the training layer (what batch adapters in training/ used to make necessary)
    model = tmp_path / "pipeline" / "models" / "synthesis.py"
    model.write_text(model.read_text() + "\n\ndef _upward():\n    from pipeline.training import run  # noqa: F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "pipeline.models.synthesis -> pipeline.training.run" in result.stdout


def test_torch_reached_from_the_runtime_breaks_its_contract(tmp_path):
    """Through another module, inside a function: the torch-free runtime may not reach torch at all."""
    copy_project(tmp_path)
    render = tmp_path / "pipeline" / "inference" / "runtime" / "render.py"
    render.write_text(
        render.read_text() + "\n\ndef _torch():\n    from pipeline.models import alignment  # noqa: F401\n"
    )
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "pipeline.inference.runtime imports no torch BROKEN" in result.stdout
    assert "pipeline.inference.runtime.render -> pipeline.models.alignment" in result.stdout
