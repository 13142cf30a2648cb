"""Stage `prepare`: fetch or render the raw corpus (params ``data``) into the normalised layout.

Besides the layout (pipeline/datasets/layout.py) it writes ``corpus.json``: how many recordings have
audio and how many are annotation-only (notes and human timing, no sound), in all and per performer.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.datasets.layout import describe_counts, write_corpus_counts
from pipeline.datasets.sources import prepare_source
from pipeline.io import atomic_dir
from stages._common import stage_main


def run(params: Params, out: Path) -> None:
    with atomic_dir(out) as tmp:
        recordings = prepare_source(params.data, tmp)
        counts = write_corpus_counts(tmp, recordings)
    print(f"prepare: {len(recordings)} recordings from {params.data.source!r} in {out}: {describe_counts(counts)}")


if __name__ == "__main__":
    stage_main(
        run, __doc__, {"out": "output: the raw corpus folder (manifest.csv, corpus.json, audio, notes, references)"}
    )
