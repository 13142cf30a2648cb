"""The code each DVC stage runs, computed from its imports, and dvc.yaml's ``deps`` kept equal to it.

A stage's code dependencies are the project modules its script imports, directly or through other
project modules (``import`` statements anywhere in a module, including inside functions), plus the
``__init__.py`` of every package on the way (Python runs them on import). Hand-kept lists drift: a
module missing from a stage's deps lets ``dvc status`` call stale results up to date; a module the
stage does not import makes it re-run for nothing.

    python scripts/stage_deps.py           # check: list every stage whose deps differ (exit 1 if any)
    python scripts/stage_deps.py --write   # rewrite the code entries of dvc.yaml's deps (comments kept)

The evaluate stage's model folders follow from code too: its deps under its ``--models`` folder are the
folders its rows read (``pipeline.evaluation.rows``: ``table_rows(params).model_folders()``), checked
and written the same way, so a new row of the table is a dep of the stage without an edit of dvc.yaml.

``tests/test_dvc_pipeline.py`` runs the check, so a new import without its dep fails the suite.
"""

from __future__ import annotations

import argparse
import ast
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "stages")  # the project's own code: everything else is a third-party import


def module_path(name: str, root: Path = ROOT) -> Path | None:
    """The file of project module ``name`` (``a.b`` -> a/b.py or a/b/__init__.py), None if not ours."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Project modules ``path`` imports (absolute and relative, at any depth of the file)."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return {m for m in found if module_path(m, root) is not None}


def import_closure(module: str, root: Path = ROOT) -> list[str]:
    """Repository-relative files of ``module`` and every project module it imports, transitively,
    with the ``__init__.py`` of each package they live in; sorted."""
    files: set[Path] = set()
    todo = [module]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        for i in range(1, len(parts)):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
            todo.append(".".join(parts[:i]))
        path = module_path(name, root)
        if path is None:
            continue
        files.add(path)
        todo.extend(imported_modules(path, root))
    return sorted(p.relative_to(root).as_posix() for p in files)


def stage_module(cmd: str) -> str:
    """The module a stage's ``cmd`` runs (``python -m stages.x ...``)."""
    words = shlex.split(cmd)
    if len(words) < 3 or words[0] != "python" or words[1] != "-m":
        raise ValueError(f"a stage's cmd must be `python -m MODULE ...`, not {cmd!r}")
    return words[2]


def is_code(dep: str) -> bool:
    return dep.split("/")[0] in PACKAGES


def _stage_blocks(dvc_yaml: dict):
    """(name, block) of every stage; a ``foreach`` stage's ``do`` block once."""
    for name, stage in dvc_yaml["stages"].items():
        yield name, stage.get("do", stage)


def dep_path(dep) -> str:
    return next(iter(dep)) if isinstance(dep, dict) else str(dep)


def model_deps(cmd: str, root: Path = ROOT) -> tuple[str, list[str]] | None:
    """For the evaluate stage: its ``--models`` folder and the deps in it, one per model folder its rows
    read (sorted); None for every other stage."""
    if stage_module(cmd) != "stages.evaluate":
        return None
    words = shlex.split(cmd)
    models = words[words.index("--models") + 1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from pipeline.config import load_params
    from pipeline.evaluation.rows import table_rows

    return models, sorted(f"{models}/{f}" for f in table_rows(load_params(root / "params.yaml")).model_folders())


def _generated(dep: str, models: tuple[str, list[str]] | None) -> bool:
    """Whether ``dep`` is one this script writes: code, or a model folder of the stage's ``models``."""
    return is_code(dep) or (models is not None and dep.startswith(models[0] + "/"))


def mismatches(root: Path = ROOT) -> dict[str, tuple[list[str], list[str]]]:
    """``{stage: (missing from deps, not needed)}`` for every stage whose code deps are not its closure
    (or, for evaluate, whose model deps are not its rows' folders)."""
    import yaml

    out = {}
    for name, block in _stage_blocks(yaml.safe_load((root / "dvc.yaml").read_text())):
        models = model_deps(block["cmd"], root)
        listed = {dep_path(d) for d in block.get("deps", []) if _generated(dep_path(d), models)}
        needed = set(import_closure(stage_module(block["cmd"]), root)) | set(models[1] if models else ())
        if listed != needed:
            out[name] = (sorted(needed - listed), sorted(listed - needed))
    return out


def write(root: Path = ROOT) -> list[str]:
    """Rewrite the code entries of every stage's deps to its closure, and the evaluate stage's model
    folders to its rows' (other data deps and comments kept); returns the stages changed."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    path = root / "dvc.yaml"
    data = yaml.load(path.read_text())
    changed = []
    for name, block in _stage_blocks(data):
        deps = block.get("deps") or []
        code = import_closure(stage_module(block["cmd"]), root)
        models = model_deps(block["cmd"], root)
        folders = models[1] if models else []
        if [dep_path(d) for d in deps if is_code(dep_path(d))] == code and [
            dep_path(d) for d in deps if _generated(dep_path(d), models) and not is_code(dep_path(d))
        ] == folders:
            continue
        others = [d for d in deps if not _generated(dep_path(d), models)]
        deps.clear()
        deps.extend(code + others + folders)
        changed.append(name)
    if changed:
        with path.open("w") as fh:
            yaml.dump(data, fh)
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    args = parser.parse_args()
    if args.write:
        changed = write()
        print(f"dvc.yaml: deps rewritten for {', '.join(changed)}" if changed else "dvc.yaml: up to date")
        import jobs  # scripts/jobs.py: the second jobs' dvc.yaml follow from this one

        return jobs.main(["--write"])
    bad = mismatches()
    for stage, (missing, extra) in bad.items():
        print(f"{stage}: missing {missing or '-'}; not needed {extra or '-'}")
    if bad:
        print("run: python scripts/stage_deps.py --write", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
