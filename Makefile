# `make`      : set up everything, then run the main job (the DVC pipeline on the built-in corpus, as a
#               Prefect flow: independent stages side by side, each with a fixed thread count)
# `make test` : set up everything, then run the test suite
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export MPLBACKEND := Agg

.PHONY: all setup repro test bench
all: repro

setup:
	@bash scripts/setup.sh

repro: setup
	performer flow run
	dvc metrics show

test: setup
	python -m pytest -q

bench: setup
	python benchmarks/align_benchmark.py
