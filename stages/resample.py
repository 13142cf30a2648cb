"""Stage `resample`: every recording of the raw corpus to mono at ``resample.sample_rate`` (16 kHz).

Annotation-only recordings (manifest ``audio`` = "") have nothing to resample: they stay in the
manifest as they are, for the align and mel stages (their timing is the reference).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tqdm import tqdm

from pipeline.audio import load_audio, write_audio
from pipeline.config import Params
from pipeline.datasets.layout import read_manifest, write_manifest
from pipeline.io import atomic_dir
from stages._common import stage_main


def run(params: Params, raw: Path, out: Path) -> None:
    rate = params.resample.sample_rate
    recordings = read_manifest(raw)
    with atomic_dir(out) as tmp:
        (tmp / "audio").mkdir()
        resampled = []
        for rec in tqdm(recordings, desc="resample", unit="rec"):
            if not rec.has_audio:
                resampled.append(rec)
                continue
            audio, _ = load_audio(raw / rec.audio, sample_rate=rate)
            name = f"audio/{rec.id}.wav"
            write_audio(tmp / name, audio, rate, subtype="FLOAT")
            resampled.append(dataclasses.replace(rec, audio=name))
        write_manifest(tmp, resampled)
    with_audio = sum(r.has_audio for r in recordings)
    print(
        f"resample: {with_audio} recordings at {rate} Hz in {out} ({len(recordings) - with_audio} annotation-only kept)"
    )


if __name__ == "__main__":
    stage_main(
        run,
        __doc__,
        {"raw": "input: the prepare stage's raw corpus", "out": "output: the 16 kHz audio folder (+ manifest)"},
    )
