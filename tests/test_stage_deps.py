"""dvc.yaml's code deps are generated from the stage scripts' imports (scripts/stage_deps.py) and checked here."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import stage_deps


def test_every_stage_depends_on_exactly_the_code_it_imports():
    """dvc.yaml's code deps of each stage equal the import closure of its script (scripts/stage_deps.py):
    a module missing would let DVC call stale results up to date; one too many re-runs it for nothing."""
    assert stage_deps.mismatches() == {}


def test_the_import_closure_follows_imports_inside_functions_and_packages(tmp_path):
    (tmp_path / "pipeline" / "sub").mkdir(parents=True)
    (tmp_path / "stages").mkdir()
    for name in ("pipeline/__init__.py", "pipeline/sub/__init__.py", "stages/__init__.py"):
        (tmp_path / name).write_text("")
    (tmp_path / "pipeline" / "a.py").write_text("def f():\n    from pipeline.sub import b\n")
    (tmp_path / "pipeline" / "sub" / "b.py").write_text("from . import c\nimport numpy\n")
    (tmp_path / "pipeline" / "sub" / "c.py").write_text("")
    (tmp_path / "pipeline" / "unused.py").write_text("")
    (tmp_path / "stages" / "s.py").write_text("import pipeline.a\n")
    assert stage_deps.import_closure("stages.s", tmp_path) == [
        "pipeline/__init__.py",
        "pipeline/a.py",
        "pipeline/sub/__init__.py",
        "pipeline/sub/b.py",
        "pipeline/sub/c.py",
        "stages/__init__.py",
        "stages/s.py",
    ]
