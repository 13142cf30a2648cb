"""Prefect 3 orchestration of the DVC pipeline.

- `reproduce` (pipeline.flows.reproduce): one Prefect task per DVC stage, built from dvc.yaml's DAG at run
  time; independent stages run at the same time; DVC stays the source of truth (unchanged stages are skipped,
  changed ones are recorded in dvc.lock).
- `retrain` (pipeline.flows.retrain): refresh data, reproduce, evaluate, register the candidate models and
  promote them when they beat the champion; `serve_retrain` serves it as a cron-scheduled deployment.

Prefect is imported lazily, so `performer` commands that do not orchestrate stay fast.
"""

from __future__ import annotations

import os
from types import ModuleType

# no network at run time: Prefect's (temporary) server would otherwise send usage telemetry
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# the temporary server's first start on a fresh machine creates and migrates its database: measured 2026-12-02
# on a new 2-core machine, it missed Prefect's default 20 s and `make` failed ("Timed out while attempting to
# connect to ephemeral Prefect API server"); a second run started in 3 s
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

__all__ = ["reproduce", "retrain", "serve_retrain", "read_dag", "StageFailed"]


def __getattr__(name: str):
    module: ModuleType
    if name in ("reproduce", "StageFailed"):
        from pipeline.flows import reproduce as module
    elif name in ("retrain", "serve_retrain"):
        from pipeline.flows import retrain as module
    elif name == "read_dag":
        from pipeline.flows import dag as module
    else:
        raise AttributeError(name)
    return getattr(module, name)
