"""`reproduce`: the DVC pipeline as a Prefect flow, one task per stage, independent stages at the same time.

DVC stays the source of truth. For each stage, once its upstream stages are done, the task asks DVC whether
the stage is up to date (`dvc status STAGE`); if so it is skipped. Otherwise it does what `dvc repro` does for
one stage: DVC deletes the stage's non-persist outputs, the stage's command runs (its output streamed into the
task's Prefect log), and DVC records the result in dvc.lock and the cache (`dvc commit -f STAGE`). Every call
into DVC goes through one lock, so parallel stages never race on DVC's repository lock or on dvc.lock; the
commands themselves run unlocked, in parallel. Finished stages are committed one by one, so a re-run after a
failure resumes from the failed stage, and `dvc status` is clean after a successful run.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff
from prefect.utilities.annotations import NotSet

from pipeline.errors import PipelineError
from pipeline.flows.dag import DEFAULT_PIPELINE, Dag, StageNode, read_dag

DVC_LOCK = threading.Lock()  # one DVC call at a time in this process (DVC's own repo lock is not re-entrant)
DOWNLOAD_RETRIES = 3  # retries of a stage that downloads (prepare with a non-builtin data.source)
TAIL_LINES = 20  # lines of a failing stage's output kept in its error message
PROGRESS_EVERY = 15.0  # seconds between the progress-bar redraws that go into a task's log


def default_jobs() -> int:
    """Stages at once by default: 2 on 2-4 cores, half the cores up to 4. Each running stage gets
    cores // jobs threads (see :func:`run_command`); on a GPU node the stages share its GPU."""
    return max(2, min(4, (os.cpu_count() or 2) // 2))


class StageFailed(PipelineError):
    """A stage's command failed; the message starts with the stage's own error."""


# ------------------------------------------------------------------ DVC calls (serialised)


@contextlib.contextmanager
def _repo(root: Path):
    """DVC's Repo at root, with this process's DVC lock held and the working directory at the root (DVC resolves
    some paths against the working directory; the stage commands get their own cwd, so no one else minds)."""
    from dvc.repo import Repo

    with DVC_LOCK:
        old = os.getcwd()
        os.chdir(root)
        try:
            with Repo(str(root)) as repo:
                yield repo
        finally:
            os.chdir(old)


def stage_changes(root: Path, node: StageNode) -> list[Any]:
    """What DVC reports as changed for this one stage (empty: up to date), like `dvc status STAGE`."""
    with _repo(root) as repo:
        status = repo.status(targets=[node.target])
    return [change for changes in status.values() for change in changes]


def remove_outputs(root: Path, node: StageNode) -> None:
    """What DVC does before it runs a stage: delete its outputs, except the `persist: true` ones."""
    with _repo(root) as repo, repo.lock:
        for stage in repo.stage.collect(node.target):
            stage.remove_outs(ignore_remove=False, force=False)


def commit(root: Path, node: StageNode) -> None:
    """Record the stage's deps and outputs in dvc.lock and the cache (`dvc commit -f STAGE`)."""
    with _repo(root) as repo:
        repo.commit(node.target, force=True)


# ------------------------------------------------------------------ one stage


def run_command(node: StageNode, root: Path, log, threads: int | None = None) -> None:
    """Run the stage's command(s) the way DVC does (in its wdir, DVC_ROOT/DVC_STAGE set), streaming the output
    line by line into `log`; raises StageFailed with the stage's last error line on top.

    threads: the stage's share of the CPU cores (OMP_NUM_THREADS, MKL_NUM_THREADS, unless already set), so
    stages running side by side do not each start a thread per core and thrash.
    """
    env = dict(os.environ, DVC_ROOT=str(root), DVC_STAGE=node.name, PYTHONUNBUFFERED="1")
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, str(threads))
    # the stage's `python` is the orchestrator's interpreter (the project's venv), as under `make`
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for cmd in node.cmd:
        log.info("> %s", cmd)
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        proc = subprocess.Popen(
            cmd, shell=True, cwd=node.wdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert proc.stdout is not None
        # newline="": a line ending in a bare "\r" is a progress bar redrawing itself (tqdm); those go to the
        # log at most every PROGRESS_EVERY seconds, not thousands of times per stage
        last_progress = -PROGRESS_EVERY
        for raw in io.TextIOWrapper(proc.stdout, encoding="utf-8", errors="replace", newline=""):
            line = raw.rstrip("\r\n")
            if raw.endswith("\r") and not raw.endswith("\r\n"):
                now = time.monotonic()
                if line.strip() and now - last_progress >= PROGRESS_EVERY:
                    log.info("%s", line)
                    last_progress = now
                continue
            tail.append(line)
            log.info("%s", line)
        code = proc.wait()
        if code != 0:
            lines = [line for line in tail if line.strip()]
            headline = error_headline(lines)
            raise StageFailed(
                f"stage {node.name!r} failed: {headline}\n"
                f"(command {cmd!r} exited with {code}; last lines of its output:)\n" + "\n".join(lines)
            )


# the last line of a Python traceback: "sqlalchemy.exc.OperationalError: ...", "KeyboardInterrupt"
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit)(?::\s|$)")


def error_headline(lines: list[str]) -> str:
    """The line that says what went wrong in a failed stage's output: its last ``error: ...`` line (the
    stages' own one-line errors), else the last exception line of a traceback, else its last line."""
    stripped = [line.strip() for line in lines if line.strip()]
    errors = [line for line in stripped if line.lower().startswith("error")]
    exceptions = [line for line in stripped if EXCEPTION_LINE.match(line)]
    headline = (errors or exceptions or stripped or ["(no output)"])[-1]
    return headline if len(headline) <= 400 else headline[:397] + "..."


@task(name="stage", cache_policy=NO_CACHE)
def run_stage(root: str, node: StageNode, force: bool = False, threads: int | None = None) -> dict[str, Any]:
    """One DVC stage: skipped when DVC says it is up to date, else run and committed to dvc.lock."""
    log = get_run_logger()
    path = Path(root)
    started = time.time()
    if node.frozen:
        log.info("stage %s is frozen: not run", node.name)
        return {"stage": node.name, "status": "frozen", "started": started, "finished": time.time()}
    changes = stage_changes(path, node)
    if not changes and not force:
        log.info("stage %s didn't change, skipping", node.name)
        return {"stage": node.name, "status": "skipped", "started": started, "finished": time.time()}
    log.info("running stage %s (%s)", node.name, "forced" if not changes else _describe(changes))
    remove_outputs(path, node)
    run_command(node, path, log, threads)
    commit(path, node)
    finished = time.time()
    log.info("stage %s done in %.1f s, recorded in dvc.lock", node.name, finished - started)
    return {"stage": node.name, "status": "ran", "started": started, "finished": finished}


def _describe(changes: list[Any]) -> str:
    parts = []
    for change in changes:
        if isinstance(change, dict):
            for kind, what in change.items():
                parts.append(f"{kind}: {', '.join(what) if isinstance(what, dict) else what}")
        else:
            parts.append(str(change))
    text = "; ".join(parts)
    return text if len(text) < 300 else text[:297] + "..."


def default_retries(root: Path, dag: Dag, pipeline: str | Path = DEFAULT_PIPELINE) -> dict[str, int]:
    """Stages that download get retries: `prepare` when data.source is not the offline built-in corpus (in
    the pipeline's own params.yaml, a job's overlay, or else the project's)."""
    source = "builtin"
    for params_file in (root / "params.yaml", (root / pipeline).parent / "params.yaml"):
        params = yaml.safe_load(params_file.read_text()) if params_file.is_file() else {}
        source = ((params or {}).get("data") or {}).get("source", source)
    return {"prepare": DOWNLOAD_RETRIES} if "prepare" in dag.stages and source != "builtin" else {}


# ------------------------------------------------------------------ the flow


# prefect types flow(task_runner=) as TaskRunner[PrefectFuture[Any]], which its own ThreadPoolTaskRunner is not
@flow(name="reproduce", task_runner=ThreadPoolTaskRunner(max_workers=64), log_prints=True)  # type: ignore[arg-type]
def reproduce(
    root: str = ".",
    targets: list[str] | None = None,
    force: list[str] | None = None,
    jobs: int | None = None,
    retries: dict[str, int] | None = None,
    retry_delay: float = 10.0,
    pipeline: str = DEFAULT_PIPELINE,
) -> dict[str, dict[str, Any]]:
    """Bring the DVC pipeline `pipeline` (a dvc.yaml, relative to `root`) of the project at `root` up to date,
    like `dvc repro [TARGETS]`, with independent stages running
    at the same time (at most `jobs` at once; :func:`default_jobs` when not given).

    force: stages to run even when DVC says they are up to date (their changed outputs then re-run what depends
    on them). retries: stage -> number of retries with exponential back-off starting at `retry_delay` seconds
    (default: the download stage, see `default_retries`). Returns stage -> {status: ran|skipped|frozen, started,
    finished}; a failing stage fails the flow with the stage's error message on top, after the stages that do
    not depend on it have finished.
    """
    log = get_run_logger()
    path = Path(root).resolve()
    dag = read_dag(path, pipeline)
    selected = dag.select(targets)
    forced = set(dag.resolve(force)) if force else set()
    retry = default_retries(path, dag, pipeline) if retries is None else dict(retries)
    limit = jobs if jobs and jobs > 0 else default_jobs()
    threads = max(1, (os.cpu_count() or 1) // limit)  # each running stage's share of the cores
    log.info("reproducing %d stage(s) of %s: %s", len(selected.stages), path / pipeline, ", ".join(selected.stages))

    futures: dict[str, Any] = {}
    results: dict[str, dict[str, Any]] = {}
    failed: dict[str, BaseException] = {}
    waiting = list(selected.stages.values())
    running: dict[Any, str] = {}
    while waiting or running:
        for node in list(waiting):
            if len(running) >= limit:
                break
            if any(up in failed for up in node.upstream if up in selected.stages):
                waiting.remove(node)
                continue
            if all(up in results for up in node.upstream if up in selected.stages):
                waiting.remove(node)
                n = retry.get(node.name, 0)
                runner = run_stage.with_options(
                    task_run_name=node.name,
                    retries=n,
                    retry_delay_seconds=exponential_backoff(backoff_factor=retry_delay)(n) if n else 0,
                    retry_jitter_factor=0.2 if n else NotSet,
                )
                future = runner.submit(
                    str(path),
                    node,
                    node.name in forced,
                    threads,
                    return_state=False,
                    wait_for=[futures[up] for up in node.upstream if up in futures],
                )
                futures[node.name] = future
                running[future] = node.name
        if not running:
            break
        done = next(iter(as_completed(list(running))))
        name = running.pop(done)
        outcome = done.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            failed[name] = outcome
            log.error("%s", outcome)
        else:
            results[name] = outcome

    if failed:
        first = next(iter(failed.values()))
        not_run = [n for n in selected.stages if n not in results and n not in failed]
        extra = f"\nnot run (upstream failed): {', '.join(not_run)}" if not_run else ""
        others = f"\nalso failed: {', '.join(list(failed)[1:])}" if len(failed) > 1 else ""
        if isinstance(first, StageFailed):
            raise StageFailed(f"{first}{others}{extra}")
        raise StageFailed(f"stage {next(iter(failed))!r} failed: {first!r}{others}{extra}") from first
    ran = [n for n, r in results.items() if r["status"] == "ran"]
    log.info("done: %d stage(s) ran (%s), %d up to date", len(ran), ", ".join(ran) or "none", len(results) - len(ran))
    return results
