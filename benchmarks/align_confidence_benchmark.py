"""Alignment confidence on a prepared corpus (figures: docs/benchmarks.md, "Alignment confidence").

Aligns, with ``pipeline.alignment.corpus.align_corpus`` (``--workers`` processes) into ``--out``:

* every recording with its own score (right pairs);
* every recording with the score of the recording 4 and 9 places on in the manifest (wrong pairs: another
  piece; on the built-in corpus, 4 on is the next piece by the same performer, 9 on a piece after it by
  another performer);
* with ``--passages``, one recording per piece with 8 s of applause-like noise or of a held tuning A
  (FluidSynth violin) inserted at the start or halfway between its two middle notes (unscored passages).

Then prints the confidence's min / median / max per kind, how well the per-note confidence tells
misaligned notes (onset error over 0.2 s) from good ones (under 0.05 s) where references exist (the area
under the ROC curve: the chance that a good note has the higher confidence), and the CPU time the
confidence takes against the alignment without it (one process, every right pair, ``time.process_time``).

    python benchmarks/align_confidence_benchmark.py --raw data/raw --audio data/audio16k --out /tmp/conf
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.alignment import align as align_module
from pipeline.alignment.corpus import align_corpus
from pipeline.audio import load_audio, write_audio
from pipeline.config import load_params
from pipeline.datasets.layout import Recording, read_reference, write_manifest
from pipeline.rendering import Instrument, Performance, render
from pipeline.scores import NoteTable

PASSAGE_SECONDS = 8.0


def manifest(root: Path) -> list[Recording]:
    """The manifest's recordings (tolerating manifests written before a column was added)."""
    frame = pd.read_csv(root / "manifest.csv", keep_default_na=False, dtype={"id": str, "piece": str})
    names = {f.name for f in fields(Recording)}
    out = []
    for row in frame.to_dict("records"):
        row = {k: v for k, v in row.items() if k in names}
        row.update(
            polyphonic=str(row["polyphonic"]).lower() in ("true", "1"),
            performer_id=int(row["performer_id"]),
            tempo_qpm=float(row["tempo_qpm"]),
            tuning_cents=float(row.get("tuning_cents") or 0.0),
        )
        out.append(Recording(**row))
    return out


def applause(seconds: float, rate: int, rms: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    out = np.zeros(int(seconds * rate), np.float32)
    clap = int(0.03 * rate)
    envelope = np.exp(-np.arange(clap) / (0.006 * rate))
    for start in rng.integers(0, len(out) - clap, int(40 * seconds)):
        out[start : start + clap] += rng.normal(0, 1, clap) * envelope * rng.uniform(0.3, 1.0)
    return (out * rms / np.sqrt(np.mean(out**2))).astype(np.float32)


def tuning_a(seconds: float, rate: int, rms: float) -> np.ndarray:
    tone = Performance(np.array([0.0]), np.array([seconds]), np.array([69]), np.array([80]))
    audio = render(tone, Instrument("FluidR3_GM.sf2", program=40, reverb_send=20), rate, tail=0.0).mean(axis=1)
    audio = audio[: int(seconds * rate)]
    return (audio * rms / np.sqrt(np.mean(audio**2))).astype(np.float32)


def with_passages(
    recordings: list[Recording], raw: Path, audio: Path, out: Path
) -> tuple[list[Recording], dict[str, float]]:
    """Recordings with an unscored passage, written to ``out`` (a folder of the audio layout), and where
    each passage starts (seconds)."""
    chosen = [r for k, r in enumerate(recordings) if k % 4 == (k // 4) % 4]  # one per piece, performers in turn
    made, starts = [], {}
    for rec in chosen:
        signal, rate = load_audio(audio / rec.audio)
        rms = float(np.sqrt(np.mean(signal**2)))
        onset = read_reference(raw / rec.reference)[0] if rec.reference else None
        for kind, make in (("applause", applause), ("tuning", tuning_a)):
            for where in ("start", "middle"):
                middle = len(onset) // 2 if onset is not None else 0
                at = 0.5 * (onset[middle - 1] + onset[middle]) if where == "middle" and middle else 0.0
                cut = int(at * rate)
                mixed = np.concatenate([signal[:cut], make(PASSAGE_SECONDS, rate, rms), signal[cut:]])
                rec_id = f"{rec.id}__{kind}_{where}"
                write_audio(out / "audio" / f"{rec_id}.wav", mixed, rate)
                made.append(replace(rec, id=rec_id, audio=f"audio/{rec_id}.wav"))
                starts[rec_id] = at
    write_manifest(out, made)
    return made, starts


def note_auc(recordings: list[Recording], raw: Path, alignments: Path, starts: dict[str, float]) -> dict:
    """Per-note confidence of good notes (error < 0.05 s) against misaligned ones (> 0.2 s): counts, medians
    and the ROC area; an unscored passage shifts the true onsets after its start."""
    good, bad = [], []
    for rec in recordings:
        if not rec.reference:
            continue
        truth = read_reference(raw / rec.reference)[0]
        if rec.id in starts:
            truth = np.where(truth >= starts[rec.id], truth + PASSAGE_SECONDS, truth)
        frame = pd.read_csv(alignments / f"{rec.id}.csv")
        error = np.abs(frame.onset.to_numpy() - truth)
        good.append(frame.confidence.to_numpy()[error < 0.05])
        bad.append(frame.confidence.to_numpy()[error > 0.2])
    g, b = np.concatenate(good), np.concatenate(bad)
    out = {"good_notes": len(g), "misaligned_notes": len(b), "good_median": float(np.median(g))}
    if len(b):
        auc = np.mean(g[:, None] > b[None, :]) + 0.5 * np.mean(g[:, None] == b[None, :])
        out.update(misaligned_median=float(np.median(b)), auc=round(float(auc), 3))
    return out


def cpu_share(recordings: list[Recording], raw: Path, audio: Path, config) -> tuple[float, float]:
    """CPU seconds of the alignments without the confidence, and of the confidence, over ``recordings``."""
    original = align_module.alignment_confidence
    spent: list[float] = []

    def timed(*args, **kwargs):
        start = time.process_time()
        result = original(*args, **kwargs)
        spent.append(time.process_time() - start)
        return result

    align_module.alignment_confidence = timed
    total = 0.0
    try:
        for rec in recordings:
            notes = NoteTable.from_csv(raw / rec.notes)
            signal, rate = load_audio(audio / rec.audio)
            start = time.process_time()
            align_module.align_score_to_audio(notes, signal, rate, config, tuning_cents=rec.tuning_cents)
            total += time.process_time() - start
    finally:
        align_module.alignment_confidence = original
    return total - sum(spent), sum(spent)


def describe(values: dict[str, float]) -> dict[str, float]:
    v = np.array(list(values.values()))
    return {"n": len(v), "min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, required=True, help="the prepare stage's folder (scores, references)")
    parser.add_argument("--audio", type=Path, required=True, help="the resample stage's folder (16 kHz audio)")
    parser.add_argument("--out", type=Path, required=True, help="a scratch folder for the alignments")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--passages", action="store_true", help="also recordings with an unscored passage")
    args = parser.parse_args()
    params = load_params(args.params)
    config = replace(params.align, workers=args.workers)
    recordings = manifest(args.audio)
    wrong = []
    for k, rec in enumerate(recordings):
        for step in (4, 9):
            other = recordings[(k + step) % len(recordings)]
            if other.piece != rec.piece:
                wrong.append(replace(rec, id=f"{rec.id}__score_of__{other.id}", notes=other.notes))
    results: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for kind, recs, audio in (("right", recordings, args.audio), ("wrong", wrong, args.audio)):
        start = time.perf_counter()
        results[kind] = align_corpus(recs, args.raw, audio, config, params.mel, args.out / kind)
        seconds[kind] = time.perf_counter() - start
    notes = {"right": note_auc(recordings, args.raw, args.out / "right", {})}
    if args.passages:
        passages, starts = with_passages(recordings, args.raw, args.audio, args.out / "passages_audio")
        results["passages"] = align_corpus(
            passages, args.raw, args.out / "passages_audio", config, params.mel, args.out / "passages"
        )
        notes["passages"] = note_auc(passages, args.raw, args.out / "passages", starts)
    alignment_cpu, confidence_cpu = cpu_share(recordings, args.raw, args.audio, params.align)
    summary: dict = {kind: describe(values) for kind, values in results.items()}
    summary["notes"] = notes
    summary["wall_seconds"] = seconds
    summary["cpu_seconds"] = {"alignment": alignment_cpu, "confidence": confidence_cpu}
    summary["lowest_right"] = sorted(results["right"].items(), key=lambda kv: kv[1])[:3]
    summary["highest_wrong"] = sorted(results["wrong"].items(), key=lambda kv: -kv[1])[:3]
    if "passages" in results:
        summary["highest_passage"] = sorted(results["passages"].items(), key=lambda kv: -kv[1])[:3]
    (args.out / "summary.json").write_text(json.dumps({"summary": summary, **results}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"confidence: {100 * confidence_cpu / alignment_cpu:.1f} % of the alignment's CPU time")


if __name__ == "__main__":
    main()
