"""Prefect 3 orchestration of the DVC pipeline.

- `reproduce` (pipeline.flows.reproduce): one Prefect task per DVC stage, built from dvc.yaml's DAG at run
  time; independent stages run at the same time; DVC stays the source of truth (unchanged stages are skipped,
  changed ones are recorded in dvc.lock).
- `retrain` (pipeline.flows.retrain): refresh data, reproduce, evaluate, register the candidate models and
  promote them when they beat the champion; `serve_retrain` serves it as a cron-scheduled deployment.

Importing this package sets Prefect's environment and imports nothing else: the modules that import
Prefect are imported by name where a command needs them, so commands that do not orchestrate stay fast.
"""

from __future__ import annotations

import os

# no network at run time: Prefect's (temporary) server would otherwise send usage telemetry
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# the temporary server's first start on a fresh machine creates and migrates its database, which can take
# longer than Prefect's default 20 s on 2 cores ("Timed out while attempting to connect to ephemeral Prefect
# API server"); later starts take seconds
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
