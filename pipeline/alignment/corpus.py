"""Align a whole corpus: every recording of the normalised layout against its score, in parallel.

Writes ``<out>/<id>.csv`` (onset, offset in seconds; onset_frame, offset_frame at the mel hop; each
note's alignment confidence) and ``<out>/confidence.json`` (each recording's confidence), and scores
the alignments against the corpus's reference alignments where it has them (the reference is read only
for scoring, never for aligning).
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
from pipeline.config import AlignConfig, MelConfig
from pipeline.datasets.confidence import low_confidence, write_confidence
from pipeline.datasets.layout import Recording, read_reference
from pipeline.errors import PipelineError
from pipeline.io import atomic_path
from pipeline.scores import NoteTable

CDF_GRID_MS = np.arange(0, 201, 5)  # the error CDF's x axis (plots/align_error_cdf.csv)


def seconds_to_frames(seconds: np.ndarray, mel: MelConfig) -> np.ndarray:
    """Index of the mel frame a time falls in (frame k spans samples [k*hop, (k+1)*hop))."""
    return np.floor(np.asarray(seconds) * mel.sample_rate / mel.hop_length + 1e-9).astype(np.int64)


def align_recording(
    rec: Recording, raw: Path, audio_dir: Path, config: AlignConfig, mel: MelConfig, out: Path
) -> tuple[str, float]:
    """Align one recording (its score from ``raw``, its audio from ``audio_dir``); writes out/<id>.csv.
    Returns the id and the recording's alignment confidence."""
    notes = NoteTable.from_csv(raw / rec.notes)
    audio, rate = load_audio(audio_dir / rec.audio)
    try:
        result = align_score_to_audio(notes, audio, rate, config, tuning_cents=rec.tuning_cents, program=rec.program)
    except PipelineError as err:  # name the recording when the fault does not name a file
        raise err if err.path is not None else PipelineError(str(err), audio_dir / rec.audio) from err
    onset_frame = seconds_to_frames(result.onset, mel)
    offset_frame = np.maximum(seconds_to_frames(result.offset, mel), onset_frame + 1)
    frame = pd.DataFrame(
        {
            "onset": result.onset.round(6),
            "offset": result.offset.round(6),
            "onset_frame": onset_frame,
            "offset_frame": offset_frame,
            "confidence": result.note_confidence.round(4),
        }
    )
    with atomic_path(out / f"{rec.id}.csv") as tmp:
        frame.to_csv(tmp, index=False)
    return rec.id, result.confidence


def align_corpus(
    recordings: list[Recording], raw: Path, audio_dir: Path, config: AlignConfig, mel: MelConfig, out: Path
) -> dict[str, float]:
    """Every recording, ``config.workers`` processes at a time, with a progress bar; writes
    out/confidence.json and returns it: recording id -> alignment confidence (manifest order)."""
    workers = max(1, min(config.workers, len(recordings)))
    confidence: dict[str, float] = {}
    with ProcessPoolExecutor(workers) as pool:
        jobs = [pool.submit(align_recording, r, raw, audio_dir, config, mel, out) for r in recordings]
        for job in tqdm(jobs, desc="align", unit="rec"):
            rec_id, value = job.result()
            confidence[rec_id] = round(float(value), 4)
    write_confidence(out, confidence)
    return confidence


def score_alignments(recordings: list[Recording], raw: Path, alignments: Path) -> tuple[dict, pd.DataFrame]:
    """Onset error statistics per material (monophonic / polyphonic) where a reference exists, and the
    error CDF (material, error_ms, share of notes within it)."""
    errors: dict[str, list[np.ndarray]] = {"monophonic": [], "polyphonic": []}
    for rec in recordings:
        if not rec.reference:
            continue
        truth, _ = read_reference(raw / rec.reference)
        predicted = pd.read_csv(alignments / f"{rec.id}.csv")["onset"].to_numpy()
        errors["polyphonic" if rec.polyphonic else "monophonic"].append(np.abs(predicted - truth) * 1000)
    metrics: dict = {"recordings": len(recordings), "with_reference": sum(bool(r.reference) for r in recordings)}
    rows = []
    for kind, chunks in errors.items():
        if not chunks:
            continue
        err = np.concatenate(chunks)
        metrics[kind] = onset_error_stats(err / 1000, np.zeros_like(err))
        rows += [
            {"material": kind, "error_ms": int(g), "share": round(float(np.mean(err <= g)), 4)} for g in CDF_GRID_MS
        ]
    return metrics, pd.DataFrame(rows, columns=["material", "error_ms", "share"])


def summary(metrics: dict) -> str:
    """One line per material: median error and share within 50 ms."""
    return ", ".join(
        f"{k}: median {v['median_ms']} ms, {100 * v['within_50ms']:.1f}% within 50 ms"
        for k, v in metrics.items()
        if isinstance(v, dict) and "median_ms" in v
    )


def confidence_summary(confidence: dict[str, float], min_confidence: float) -> str:
    """One line: the confidence's range and the recordings under ``min_confidence``, named."""
    if not confidence:
        return "alignment confidence: no recordings"
    values = np.array(list(confidence.values()))
    low = low_confidence(confidence, min_confidence)
    line = (
        f"alignment confidence min {values.min():.2f}, median {np.median(values):.2f}; "
        f"{len(low)} of {len(values)} under align.min_confidence {min_confidence:g}"
    )
    return line + (f": {', '.join(low)}" if low else "")
