"""Align a whole corpus: every recording of the normalised layout against its score, in parallel.

Writes ``<out>/<id>.csv`` (onset, offset in seconds; onset_frame, offset_frame at the mel hop; each
note's alignment confidence), ``<out>/confidence.json`` (each DTW-aligned recording's confidence) and
``<out>/sources.json`` (each recording's timing source: ``dtw`` or ``reference``), and scores the DTW
alignments against the corpus's reference alignments where it has them (for a recording with audio the
reference is read only for scoring, never for aligning).

An annotation-only recording (no audio) is not DTW-aligned: its alignment *is* its reference (a
dataset's human note timing), written in the same per-recording format with an empty ``confidence``
(no DTW ran, nothing to be confident about) and ``reference`` in sources.json; it is not scored.
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
from pipeline.datasets.confidence import DTW, REFERENCE, low_confidence, write_confidence, write_sources
from pipeline.datasets.layout import Recording, read_reference
from pipeline.errors import PipelineError
from pipeline.io import atomic_path
from pipeline.scores import NoteTable

CDF_GRID_MS = np.arange(0, 201, 5)  # the error CDF's x axis (plots/align_error_cdf.csv)


def seconds_to_frames(seconds: np.ndarray, mel: MelConfig) -> np.ndarray:
    """Index of the mel frame a time falls in (frame k spans samples [k*hop, (k+1)*hop))."""
    return np.floor(np.asarray(seconds) * mel.sample_rate / mel.hop_length + 1e-9).astype(np.int64)


def write_alignment(
    path: Path, onset: np.ndarray, offset: np.ndarray, note_confidence: np.ndarray, mel: MelConfig
) -> None:
    """One recording's alignment CSV: seconds, the mel frames they fall in, each note's confidence
    (NaN, written empty, where no DTW ran)."""
    onset_frame = seconds_to_frames(onset, mel)
    offset_frame = np.maximum(seconds_to_frames(offset, mel), onset_frame + 1)
    frame = pd.DataFrame(
        {
            "onset": onset.round(6),
            "offset": offset.round(6),
            "onset_frame": onset_frame,
            "offset_frame": offset_frame,
            "confidence": note_confidence.round(4),
        }
    )
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


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
    write_alignment(out / f"{rec.id}.csv", result.onset, result.offset, result.note_confidence, mel)
    return rec.id, result.confidence


def reference_recording(rec: Recording, raw: Path, mel: MelConfig, out: Path) -> None:
    """An annotation-only recording's alignment: its reference timing, in DTW's format (out/<id>.csv)."""
    if not rec.reference:
        raise PipelineError(
            f"annotation-only recording {rec.id} has no reference alignment: no audio to align, no timing to learn",
            raw / "manifest.csv",
        )
    notes = NoteTable.from_csv(raw / rec.notes)
    onset, offset = read_reference(raw / rec.reference)
    if len(onset) != len(notes):
        raise PipelineError(f"reference has {len(onset)} notes but the score has {len(notes)}", raw / rec.reference)
    write_alignment(out / f"{rec.id}.csv", onset, offset, np.full(len(onset), np.nan), mel)


def align_corpus(
    recordings: list[Recording], raw: Path, audio_dir: Path, config: AlignConfig, mel: MelConfig, out: Path
) -> dict[str, float]:
    """Every recording with audio DTW-aligned, ``config.workers`` processes at a time, with a progress
    bar; every annotation-only one given its reference timing. Writes out/confidence.json (the
    DTW-aligned recordings) and out/sources.json (every recording) and returns the confidences:
    recording id -> alignment confidence (manifest order)."""
    audible = [r for r in recordings if r.has_audio]
    for rec in recordings:
        if not rec.has_audio:
            reference_recording(rec, raw, mel, out)
    workers = max(1, min(config.workers, len(audible)))
    confidence: dict[str, float] = {}
    with ProcessPoolExecutor(workers) as pool:
        jobs = [pool.submit(align_recording, r, raw, audio_dir, config, mel, out) for r in audible]
        for job in tqdm(jobs, desc="align", unit="rec"):
            rec_id, value = job.result()
            confidence[rec_id] = round(float(value), 4)
    write_confidence(out, confidence)
    write_sources(out, {r.id: DTW if r.has_audio else REFERENCE for r in recordings})
    return confidence


def score_alignments(recordings: list[Recording], raw: Path, alignments: Path) -> tuple[dict, pd.DataFrame]:
    """Onset error statistics per material (monophonic / polyphonic) of the DTW-aligned recordings that
    have a reference (an annotation-only recording's alignment is its reference: not counted), and the
    error CDF (material, error_ms, share of notes within it)."""
    errors: dict[str, list[np.ndarray]] = {"monophonic": [], "polyphonic": []}
    aligned = [r for r in recordings if r.has_audio]
    for rec in aligned:
        if not rec.reference:
            continue
        truth, _ = read_reference(raw / rec.reference)
        predicted = pd.read_csv(alignments / f"{rec.id}.csv")["onset"].to_numpy()
        errors["polyphonic" if rec.polyphonic else "monophonic"].append(np.abs(predicted - truth) * 1000)
    metrics: dict = {
        "recordings": len(recordings),
        "dtw_aligned": len(aligned),  # the recordings with audio
        "reference_timing": len(recordings) - len(aligned),  # annotation-only: their alignment is the reference
        "with_reference": sum(bool(r.reference) for r in aligned),  # DTW-aligned and scored against a reference
    }
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
