"""The pipeline's stage graph, read from dvc.yaml through DVC itself (foreach/matrix stages included)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import PipelineError


@dataclass(frozen=True)
class StageNode:
    name: str  # DVC's address of the stage: "mel", "train_ablation@no_encoder", "sub/dvc.yaml:x"
    cmd: tuple[str, ...]  # the stage's command(s), run in order
    wdir: Path  # where DVC runs the command
    upstream: tuple[str, ...]  # stages whose outputs this stage depends on
    outs: tuple[str, ...]  # output paths, relative to the repository root
    target: str = ""  # an unambiguous DVC target for it: "/abs/path/dvc.yaml:name"
    frozen: bool = False


@dataclass(frozen=True)
class Dag:
    root: Path
    stages: dict[str, StageNode] = field(default_factory=dict)  # in a topological order (dvc.yaml order on ties)

    @property
    def edges(self) -> set[tuple[str, str]]:
        """(upstream, downstream) pairs."""
        return {(up, node.name) for node in self.stages.values() for up in node.upstream}

    def downstream(self, name: str) -> list[str]:
        """`name` and every stage that (transitively) depends on it, in order."""
        found = {name}
        for node in self.stages.values():
            if any(up in found for up in node.upstream):
                found.add(node.name)
        return [n for n in self.stages if n in found]

    def select(self, targets: Iterable[str] | None) -> Dag:
        """The targets and everything upstream of them (what `dvc repro TARGETS` considers)."""
        if not targets:
            return self
        wanted: set[str] = set()
        todo = self.resolve(targets)
        while todo:
            name = todo.pop()
            if name not in wanted:
                wanted.add(name)
                todo.extend(self.stages[name].upstream)
        return Dag(self.root, {n: s for n, s in self.stages.items() if n in wanted})

    def resolve(self, targets: Iterable[str]) -> list[str]:
        """Stage names for targets; a foreach group's name ("train_ablation") means all of its stages."""
        names: list[str] = []
        for target in targets:
            group = [target] if target in self.stages else [n for n in self.stages if n.split("@", 1)[0] == target]
            if not group:
                raise PipelineError(f"unknown stage {target!r} (known: {', '.join(self.stages)})")
            names.extend(n for n in group if n not in names)
        return names


DEFAULT_PIPELINE = "dvc.yaml"  # what `dvc repro` runs from the project root


def read_dag(root: Path | str = ".", pipeline: str | Path = DEFAULT_PIPELINE) -> Dag:
    """The stages of one pipeline file of the DVC project at `root` (``dvc.yaml``: the main job;
    ``jobs/real-violin/dvc.yaml``: a second job, see scripts/jobs.py) with their upstream stages, as DVC sees
    them. Stages of ``pipeline`` are named as in it ("mel"), any other as "sub/dvc.yaml:name"."""
    from dvc.repo import Repo

    root = Path(root).resolve()
    dvcfile = (root / pipeline).resolve()
    try:
        repo = Repo(str(root))
    except Exception as err:  # NotDvcRepoError and friends
        raise PipelineError(f"not a DVC project: {err}", root) from err
    with repo:
        if not dvcfile.is_file():  # checked after the project, whose absence is the likelier fault
            raise PipelineError("pipeline file not found", dvcfile)
        graph = repo.index.graph  # edges go from a stage to the stages it depends on
        every = [s for s in repo.index.stages if getattr(s, "cmd", None)]  # pipeline stages, dvc.yaml order
        wanted = {s for s in every if Path(s.path).resolve() == dvcfile}
        todo = list(wanted)
        while todo:  # and whatever they depend on in other files
            for up in graph.successors(todo.pop()):
                if getattr(up, "cmd", None) and up not in wanted:
                    wanted.add(up)
                    todo.append(up)
        order = [s for s in every if s in wanted]
        names = {s: _name(root, dvcfile, s) for s in order}
        nodes = {}
        for s in order:
            cmd = s.cmd if isinstance(s.cmd, list) else [s.cmd]
            outs = tuple(str(Path(o.fs_path).relative_to(root)) for o in s.outs)
            upstream = tuple(sorted(names[d] for d in graph.successors(s) if d in names))
            nodes[names[s]] = StageNode(
                names[s], tuple(cmd), Path(s.wdir), upstream, outs, f"{Path(s.path).resolve()}:{s.name}", bool(s.frozen)
            )
    # topological order, keeping dvc.yaml's order among stages that are ready together
    ordered: dict[str, StageNode] = {}
    while len(ordered) < len(nodes):
        ready = [n for n in nodes.values() if n.name not in ordered and all(u in ordered for u in n.upstream)]
        if not ready:  # DVC refuses cycles itself; this is a guard
            raise PipelineError("the stage graph has a cycle", root)
        for node in ready:
            ordered[node.name] = node
    return Dag(root, ordered)


def _name(root: Path, pipeline: Path, stage) -> str:
    """The stage's name: "name" in the pipeline file read, else "sub/dvc.yaml:name" (as `dvc repro` prints it)."""
    dvcfile = Path(stage.path).resolve()
    return stage.name if dvcfile == pipeline else f"{dvcfile.relative_to(root)}:{stage.name}"
