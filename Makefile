# `make`      : set up everything, then run the main job (dvc repro on the built-in corpus)
# `make test` : set up everything, then run the test suite
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export MPLBACKEND := Agg

.PHONY: all setup repro test bench
all: repro

setup:
	@bash scripts/setup.sh

repro: setup
	dvc repro
	dvc metrics show

test: setup
	python -m pytest -q

bench: setup
	python benchmarks/align_benchmark.py
