"""Stage `align`: DTW-align every score to its 16 kHz recording; score it against the reference.

Outputs data/alignments/<id>.csv (onset, offset in seconds; onset_frame, offset_frame at the mel hop),
metrics/align.json and plots/align_error_cdf.csv. The reference alignment is read only for scoring.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.alignment.align import align_score_to_audio
from pipeline.alignment.metrics import onset_error_stats
from pipeline.audio import load_audio
from pipeline.config import AlignConfig, MelConfig, Params
from pipeline.datasets.layout import Recording, read_manifest, read_reference
from pipeline.io import atomic_dir, atomic_path, write_json
from pipeline.scores import NoteTable
from stages._common import stage_main

RAW = Path("data/raw")
AUDIO = Path("data/audio16k")
OUT = Path("data/alignments")
METRICS = Path("metrics/align.json")
PLOT = Path("plots/align_error_cdf.csv")


def seconds_to_frames(seconds: np.ndarray, mel: MelConfig) -> np.ndarray:
    """Index of the mel frame a time falls in (frame k spans samples [k*hop, (k+1)*hop))."""
    return np.floor(np.asarray(seconds) * mel.sample_rate / mel.hop_length + 1e-9).astype(np.int64)


def align_recording(rec: Recording, config: AlignConfig, mel: MelConfig, out_dir: Path) -> str:
    notes = NoteTable.from_csv(RAW / rec.notes)
    audio, rate = load_audio(AUDIO / rec.audio)
    result = align_score_to_audio(notes, audio, rate, config, tuning_cents=rec.tuning_cents)
    onset_frame = seconds_to_frames(result.onset, mel)
    offset_frame = np.maximum(seconds_to_frames(result.offset, mel), onset_frame + 1)
    frame = pd.DataFrame(
        {
            "onset": result.onset.round(6),
            "offset": result.offset.round(6),
            "onset_frame": onset_frame,
            "offset_frame": offset_frame,
        }
    )
    with atomic_path(out_dir / f"{rec.id}.csv") as tmp:
        frame.to_csv(tmp, index=False)
    return rec.id


def score_alignments(recordings: list[Recording], align_dir: Path) -> tuple[dict, pd.DataFrame]:
    """Onset error statistics per material (monophonic / polyphonic) where a reference exists."""
    errors: dict[str, list[np.ndarray]] = {"monophonic": [], "polyphonic": []}
    for rec in recordings:
        if not rec.reference:
            continue
        truth, _ = read_reference(RAW / rec.reference)
        predicted = pd.read_csv(align_dir / f"{rec.id}.csv")["onset"].to_numpy()
        errors["polyphonic" if rec.polyphonic else "monophonic"].append(np.abs(predicted - truth) * 1000)
    metrics: dict = {"recordings": len(recordings), "with_reference": sum(bool(r.reference) for r in recordings)}
    rows = []
    for kind, chunks in errors.items():
        if not chunks:
            continue
        err = np.concatenate(chunks)
        metrics[kind] = onset_error_stats(err / 1000, np.zeros_like(err))
        grid = np.arange(0, 201, 5)
        rows += [{"material": kind, "error_ms": int(g), "share": round(float(np.mean(err <= g)), 4)} for g in grid]
    return metrics, pd.DataFrame(rows, columns=["material", "error_ms", "share"])


def run(params: Params) -> None:
    recordings = read_manifest(AUDIO)
    workers = max(1, min(params.align.workers, len(recordings)))
    with atomic_dir(OUT) as tmp:
        with ProcessPoolExecutor(workers) as pool:
            jobs = [pool.submit(align_recording, r, params.align, params.mel, tmp) for r in recordings]
            for job in tqdm(jobs, desc="align", unit="rec"):
                job.result()
        metrics, cdf = score_alignments(recordings, tmp)
    write_json(METRICS, metrics)
    with atomic_path(PLOT) as tmp_plot:
        cdf.to_csv(tmp_plot, index=False)
    summary = ", ".join(
        f"{k}: median {v['median_ms']} ms, {100 * v['within_50ms']:.1f}% within 50 ms"
        for k, v in metrics.items()
        if isinstance(v, dict)
    )
    print(f"align: {len(recordings)} recordings in {OUT}" + (f" ({summary})" if summary else ""))


if __name__ == "__main__":
    stage_main(run, __doc__)
