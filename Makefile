# `make`      : set up everything, then run the main job (the DVC pipeline on the built-in corpus, as a
#               Prefect flow: independent stages side by side, each with a fixed thread count)
# `make test` : set up everything, then run the test suite
# `make lint` : set up everything, then ruff (lint + format check), mypy, and lint-imports when there is
#               an .importlinter contract file
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export MPLBACKEND := Agg

.PHONY: all setup repro test lint bench
all: repro

setup:
	@bash scripts/setup.sh

repro: setup
	performer flow run
	dvc metrics show

test: setup
	python -m pytest -q

lint: setup
	ruff check .
	ruff format --check .
	mypy
	@if [ -f .importlinter ]; then echo lint-imports; lint-imports; else echo "lint-imports: no .importlinter, skipped"; fi

bench: setup
	python benchmarks/align_benchmark.py
