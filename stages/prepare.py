"""Stage `prepare`: fetch or render the raw corpus (params ``data``) into the normalised layout."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.datasets.sources import prepare_source
from pipeline.io import atomic_dir
from stages._common import stage_main


def run(params: Params, out: Path) -> None:
    with atomic_dir(out) as tmp:
        recordings = prepare_source(params.data, tmp)
    print(f"prepare: {len(recordings)} recordings from {params.data.source!r} in {out}")


if __name__ == "__main__":
    stage_main(run, __doc__, {"out": "output: the raw corpus folder (manifest.csv, audio, notes, references)"})
