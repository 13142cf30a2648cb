"""Stage `resample`: every recording of data/raw to mono at resample.sample_rate (16 kHz) in data/audio16k."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tqdm import tqdm

from pipeline.audio import load_audio, write_audio
from pipeline.config import Params
from pipeline.datasets.layout import read_manifest, write_manifest
from pipeline.io import atomic_dir
from stages._common import stage_main

RAW = Path("data/raw")
OUT = Path("data/audio16k")


def run(params: Params) -> None:
    rate = params.resample.sample_rate
    recordings = read_manifest(RAW)
    with atomic_dir(OUT) as tmp:
        (tmp / "audio").mkdir()
        out = []
        for rec in tqdm(recordings, desc="resample", unit="rec"):
            audio, _ = load_audio(RAW / rec.audio, sample_rate=rate)
            name = f"audio/{rec.id}.wav"
            write_audio(tmp / name, audio, rate, subtype="FLOAT")
            out.append(dataclasses.replace(rec, audio=name))
        write_manifest(tmp, out)
    print(f"resample: {len(recordings)} recordings at {rate} Hz in {OUT}")


if __name__ == "__main__":
    stage_main(run, __doc__)
