"""Stage `prepare`: fetch or render the raw corpus into data/raw (normalised layout)."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.datasets.sources import prepare_source
from pipeline.io import atomic_dir
from stages._common import stage_main

OUT = Path("data/raw")


def run(params: Params) -> None:
    with atomic_dir(OUT) as tmp:
        recordings = prepare_source(params.data, tmp)
    print(f"prepare: {len(recordings)} recordings from {params.data.source!r} in {OUT}")


if __name__ == "__main__":
    stage_main(run, __doc__)
