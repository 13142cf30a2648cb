# `make`      : set up everything, then run the main job (the DVC pipeline on the built-in corpus, as a
#               Prefect flow: independent stages side by side, each with a fixed thread count)
# `make real` : set up everything, then the second job: the same DAG on the Bach Violin Dataset (real violin
#               recordings; jobs/real-violin/params.yaml says where the release is), in jobs/real-violin/
#               (its own data, models, metrics, reports and MLflow store), ending with its table
# `make test` : set up everything plus what only the tests need (Chromium, docker-compose), then run the
#               whole test suite
# `make test-fast`: the quick lane for the edit loop: every test but the slow, server, browser and tools
#               ones (markers in pyproject.toml), under 3 minutes on 2 cores; needs only `make setup`
#               (no Chromium, no docker-compose)
# `make lint` : set up everything, then ruff (lint + format check), mypy, lint-imports (the layers) and
#               the check that dvc.yaml's code deps are each stage's imports (scripts/stage_deps.py)
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export MPLBACKEND := Agg

.PHONY: all setup setup-test repro real test test-fast lint bench
all: repro

setup:
	@bash scripts/setup.sh

setup-test:
	@bash scripts/setup.sh --test

repro: setup
	performer flow run
	dvc metrics show

REAL := jobs/real-violin
real: setup
	python scripts/jobs.py
	performer flow run --pipeline $(REAL)/dvc.yaml
	@cat $(REAL)/metrics/table2.md

test: setup-test
	python -m pytest -q

test-fast: setup
	python -m pytest -q -m "not slow and not server and not browser and not tools"

lint: setup
	ruff check .
	ruff format --check .
	mypy
	lint-imports
	python scripts/stage_deps.py
	python scripts/jobs.py

bench: setup
	python benchmarks/align_benchmark.py
