"""dvc.yaml's code deps are generated from the stage scripts' imports (scripts/stage_deps.py) and checked here."""

import ast
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import stage_deps


def test_every_stage_depends_on_exactly_the_code_it_imports():
    """dvc.yaml's code deps of each stage equal the import closure of its script (scripts/stage_deps.py),
    and the evaluate stage's model deps the folders its rows read: a dep missing would let DVC call stale
    results up to date; one too many re-runs it for nothing."""
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


def lazy_packages(root) -> set[str]:
    """The packages under ``root``/pipeline whose ``__init__`` has a module ``__getattr__`` (PEP 562)."""
    return {
        str(path.relative_to(root))
        for path in (root / "pipeline").rglob("__init__.py")
        if any(
            isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
            for node in ast.parse(path.read_text()).body
        )
    }


def test_no_package_loads_names_lazily(tmp_path):
    """The closure reads import statements: a package ``__init__`` whose ``__getattr__`` imports on first
    use would hide what a stage runs from it (the torch-free render modules live in a package of their
    own, ``pipeline/inference/runtime``, instead)."""
    assert lazy_packages(stage_deps.ROOT) == set()
    (tmp_path / "pipeline" / "lazy").mkdir(parents=True)
    (tmp_path / "pipeline" / "lazy" / "__init__.py").write_text("def __getattr__(name):\n    raise AttributeError\n")
    assert lazy_packages(tmp_path) == {"pipeline/lazy/__init__.py"}  # the check sees one


# ------------------------------------------------------------------ every path named once, in dvc.yaml


def _relative(items, wdir: Path) -> set[str]:
    return {os.path.relpath(i.fs_path, wdir) for i in items}


def _stage_paths():
    """Per stage: (its cmd's path arguments, its data deps, its outs incl. metrics and plots), via DVC."""
    import shlex

    from dvc.repo import Repo

    root = stage_deps.ROOT
    found = {}
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            if not getattr(stage, "cmd", None):
                continue
            words = shlex.split(stage.cmd)
            given = {
                words[i + 1]
                for i, word in enumerate(words[:-1])
                if word.startswith("--") and word not in ("--params", "--ablation", "--variant")
            }
            # relative to where the command runs (a second job's stages run in jobs/<name>/: scripts/jobs.py)
            wdir = Path(stage.wdir).resolve()
            code = tuple(os.path.relpath(root / d, wdir) + "/" for d in ("pipeline", "stages"))
            params = {os.path.relpath(f, wdir) for f in [root / "params.yaml", *(root / "jobs").glob("*/params.yaml")]}
            deps = {d for d in _relative(stage.deps, wdir) if not d.startswith(code) and d not in params}
            found[stage.addressing] = (given, deps, _relative(stage.outs, wdir))
    return found


def test_each_stage_gets_every_path_it_reads_or_writes_from_its_command():
    """dvc.yaml names a stage's inputs and outputs once (its cmd passes them to the script): every data
    dep and every output is on the command line (a folder argument may hold several deps, e.g. models/),
    and nothing on the command line is a path DVC does not track for that stage."""
    stages = _stage_paths()
    assert {"prepare", "align", "mel", "train_ablation@no_encoder", "evaluate"} <= set(stages)
    for name, (given, deps, outs) in stages.items():
        tracked = deps | outs
        for path in tracked:
            assert any(path == g or path.startswith(g + "/") for g in given), f"{name}: {path} is not in its cmd"
        for arg in given:
            inside = any(t == arg or t.startswith(arg + "/") or arg.startswith(t + "/") for t in tracked)
            assert inside, f"{name}: cmd path {arg} is untracked"
        assert outs <= given, f"{name}: outputs {sorted(outs - given)} are not in its cmd"


def test_no_stage_script_or_library_module_spells_a_pipeline_path():
    """The paths live in dvc.yaml only: no "data/...", "models/...", "metrics/...", "plots/..." or
    "reports" literal in stages/ or pipeline/ (docstrings may mention them as examples)."""
    import ast
    import re

    pattern = re.compile(r"^(data|models|metrics|plots|reports)/")
    offenders = []
    for folder in ("stages", "pipeline"):
        for path in sorted((stage_deps.ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            docstrings = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                and node.body
                and isinstance(node.body[0], ast.Expr)
                and isinstance(node.body[0].value, ast.Constant)
            }
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and id(node) not in docstrings
                    and pattern.match(node.value)
                ):
                    offenders.append(f"{path.relative_to(stage_deps.ROOT)}:{node.lineno}: {node.value!r}")
    assert offenders == []
