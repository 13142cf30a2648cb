"""Tune the transcriber's thresholds and measure the metric ceilings on real recordings.

The recordings are cut into clips as the evaluate stage cuts them (5 s of mel frames), each with
the score notes sounding in it (from the mel stage's features: ``pitch``, ``onset_frame``,
``offset_frame``; frame length from params.yaml ``mel``). Then:

1. the Basic Pitch network runs once per clip (pipeline.evaluation.transcription);
2. **ceilings**: the metrics of the recordings themselves, i.e. the best score a system can get
   (note-onset F1, note F1 with offsets, frame multi-pitch accuracy at the default thresholds; on
   monophonic recordings also raw pitch accuracy / voicing recall of both f0 trackers, with their
   seconds per clip), per recording (mean over its clips);
3. **grid**: onset threshold x frame threshold x minimum note length x melodia trick x inferred
   onsets x latency, decoded
   from the stored network output, ranked by mean note-onset F1 over all clips; the best row's
   ceilings are printed per recording too.

    python benchmarks/transcriber_tuning.py                          # every recording not in the test split
    python benchmarks/transcriber_tuning.py --recordings a__aurora,b__bruno --json tuning.json
    python benchmarks/transcriber_tuning.py --recordings-file ids.txt --trackers contour

Only one process, one thread (the pipeline may be running beside it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.evaluation import pitch as pitch_metrics  # noqa: E402
from pipeline.evaluation import transcription as tx  # noqa: E402

CLIP_SECONDS = 5.0
MIN_CLIP_SECONDS = 0.5  # the clip stage keeps a short last window of >= 32 frames (~0.5 s)


@dataclass
class Clip:
    recording: str
    polyphonic: bool
    item: tx.TuningItem
    hop_length: int  # f0 grid of the pitch metrics: the mel hop, at the audio's rate


def select_recordings(args, features_dir: Path, params) -> list[str]:
    """The ids asked for, or every recording whose piece is not in the test split."""
    if args.recordings:
        return [r.strip() for r in args.recordings.split(",") if r.strip()]
    if args.recordings_file:
        lines = Path(args.recordings_file).read_text().splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    from pipeline.datasets.split import read_split

    split = read_split(features_dir, params.split)
    return sorted(split.train + split.validation)


def load_clips(recordings: list[str], data: Path, mel, clip_seconds: float) -> list[Clip]:
    """Clips of ``clip_seconds`` (a whole number of mel frames) with their sounding score notes."""
    import soundfile as sf

    from pipeline.datasets.layout import read_manifest
    from pipeline.features import load_features

    audio_root = data / "audio16k"
    manifest = {r.id: r for r in read_manifest(audio_root)}
    frame_s = mel.hop_length / mel.sample_rate
    clip_frames = round(clip_seconds / frame_s)
    clips = []
    for rec_id in recordings:
        if rec_id not in manifest:
            raise SystemExit(f"{rec_id}: not in {audio_root / 'manifest.csv'}")
        rec = manifest[rec_id]
        audio, sr = sf.read(audio_root / rec.audio, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        feats = load_features(data / "features" / f"{rec_id}.npz")
        on, off = feats["onset_frame"].astype(np.int64), feats["offset_frame"].astype(np.int64)
        pitch = feats["pitch"].astype(np.float64)
        hop = round(frame_s * sr)  # samples per mel frame at the audio's own rate
        total = int(feats["mel"].shape[1])
        for start in range(0, total, clip_frames):
            frames = min(clip_frames, total - start)
            if frames * frame_s < MIN_CLIP_SECONDS:
                continue
            stop = start + frames
            keep = (on < stop) & (off > start)
            intervals = (
                np.stack([np.clip(on[keep] - start, 0, frames), np.clip(off[keep] - start, 0, frames)], axis=1)
                * frame_s
            )
            item = tx.TuningItem(
                audio[start * hop : stop * hop],
                sr,
                intervals,
                pitch[keep],
                rec.tuning_cents,
                ref_onset_heard=(on[keep] >= start),
            )
            clips.append(Clip(rec_id, rec.polyphonic, item, hop))
    return clips


def _mean(values) -> float:
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def ceilings(
    clips: list[Clip],
    posteriors: list[tx.Posteriors],
    settings: tx.Decoding,
    trackers: list[str],
    post_seconds: list[float],
    transitions: tuple[float, ...] = (),
) -> dict[str, dict[str, float]]:
    """Per-recording means over clips of every metric, the recordings scored against their own score."""
    per: dict[str, dict[str, list[float]]] = {}
    for clip, post, net_s in zip(clips, posteriors, post_seconds):
        it = clip.item
        est = tx.decode_notes(post, settings)
        row = per.setdefault(clip.recording, {})
        notes = tx.note_metrics(
            est, it.ref_intervals, it.ref_pitches, it.tuning_cents, ref_onset_heard=it.ref_onset_heard
        )
        for key in ("note_onset_f1", "note_f1"):
            row.setdefault(key, []).append(notes[key])
        row.setdefault("multipitch_accuracy", []).append(
            tx.multipitch_accuracy(est, it.ref_intervals, it.ref_pitches, it.tuning_cents)
        )
        if clip.polyphonic:
            continue
        for tracker in trackers:
            started = time.perf_counter()
            track = pitch_metrics.f0_track(it.audio, it.sample_rate, clip.hop_length, tracker, posteriors=post)
            seconds = time.perf_counter() - started + (net_s if tracker == "contour" else 0.0)
            scores = pitch_metrics.score_f0(track, it.ref_intervals, it.ref_pitches, it.tuning_cents)
            row.setdefault(f"{tracker}_raw_pitch_accuracy", []).append(scores["raw_pitch_accuracy"])
            row.setdefault(f"{tracker}_voicing_recall", []).append(scores["voicing_recall"])
            for tol in transitions:  # the transition tolerance's effect (the column above: the default)
                strict = pitch_metrics.score_f0(
                    track, it.ref_intervals, it.ref_pitches, it.tuning_cents, transition_seconds=tol
                )
                row.setdefault(f"{tracker}_raw_pitch_accuracy@{tol:g}s", []).append(strict["raw_pitch_accuracy"])
            per_clip = seconds * CLIP_SECONDS / (len(it.audio) / it.sample_rate)  # scaled to a full-length clip
            row.setdefault(f"{tracker}_seconds_per_clip", []).append(per_clip)
    return {
        rec: {k: _mean(v) for k, v in metrics.items()} | {"clips": len(metrics["note_onset_f1"])}
        for rec, metrics in per.items()
    }


def print_ceilings(title: str, table: dict[str, dict[str, float]], polyphonic: dict[str, bool]) -> None:
    keys = sorted(
        {k for row in table.values() for k in row if k != "clips"},
        key=lambda k: (k.split("_")[0] in ("pyin", "contour"), k),
    )
    print(f"\n### {title}\n")
    print("| recording | poly | clips | " + " | ".join(keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for rec, row in table.items():
        print(
            f"| {rec} | {'yes' if polyphonic[rec] else 'no'} | {row['clips']} | "
            + " | ".join(f"{row.get(k, float('nan')):.3f}" for k in keys)
            + " |"
        )
    for label, want in (("mono", False), ("poly", True)):
        rows = [row for rec, row in table.items() if polyphonic[rec] == want]
        if rows:
            print(
                f"| **mean {label}** | | {sum(r['clips'] for r in rows)} | "
                + " | ".join(f"{_mean([r.get(k, float('nan')) for r in rows]):.3f}" for k in keys)
                + " |"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", help="comma-separated recording ids")
    parser.add_argument("--recordings-file", help="a file of recording ids, one a line")
    parser.add_argument("--data", default=str(ROOT / "data"), help="folder holding audio16k/ and features/")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--clip-seconds", type=float, default=CLIP_SECONDS)
    parser.add_argument("--onset", default="0.3,0.4,0.5,0.6", help="onset thresholds")
    parser.add_argument("--frame", default="0.2,0.3,0.4", help="frame thresholds")
    parser.add_argument("--min-note", default="0.03,0.058,0.1", help="minimum note lengths (s)")
    parser.add_argument("--melodia", default="0,1", help="melodia trick off/on")
    parser.add_argument("--infer-onsets", default="0,1", help="onsets inferred from frame jumps off/on")
    parser.add_argument("--latency", default="0.03,0.04,0.05", help="transcriber latencies (s) subtracted")
    parser.add_argument("--reonset", default="none,0.6,0.7,0.8", help="re-onset thresholds (none: off)")
    parser.add_argument("--trackers", default="pyin,contour", help="f0 trackers to compare")
    parser.add_argument(
        "--transitions", default="0,0.016,0.05", help="extra f0 transition tolerances (s) to report beside the default"
    )
    parser.add_argument("--top", type=int, default=20, help="grid rows printed (all go to --json)")
    parser.add_argument("--json", help="write everything measured here")
    args = parser.parse_args(argv)

    from pipeline.config import load_params

    params = load_params(args.params)
    data = Path(args.data)
    recordings = select_recordings(args, data / "features", params)
    trackers = [t for t in args.trackers.split(",") if t]
    started = time.perf_counter()
    clips = load_clips(recordings, data, params.mel, args.clip_seconds)
    print(
        f"{len(recordings)} recordings, {len(clips)} clips of <= {args.clip_seconds} s "
        f"(mel hop {params.mel.hop_length} at {params.mel.sample_rate} Hz)"
    )
    polyphonic = {c.recording: c.polyphonic for c in clips}

    transcriber = tx.Transcriber(threads=1)
    posteriors, post_seconds = [], []
    for clip in clips:
        t0 = time.perf_counter()
        posteriors.append(transcriber.posteriors(clip.item.audio, clip.item.sample_rate))
        post_seconds.append(time.perf_counter() - t0)
    print(
        f"network: {sum(post_seconds):.1f} s for {len(clips)} clips ({_mean(post_seconds):.3f} s per clip, one thread)"
    )

    default = tx.Decoding()
    transitions = tuple(float(v) for v in args.transitions.split(",") if v)
    default_table = ceilings(clips, posteriors, default, trackers, post_seconds, transitions)
    print_ceilings(f"Ceilings at the default settings {default}", default_table, polyphonic)

    flags = lambda text: [bool(int(v)) for v in text.split(",")]  # noqa: E731
    numbers = lambda text: [float(v) for v in text.split(",")]  # noqa: E731
    grid = {
        "onset_threshold": numbers(args.onset),
        "frame_threshold": numbers(args.frame),
        "min_note_seconds": numbers(args.min_note),
        "melodia_trick": flags(args.melodia),
        "infer_onsets": flags(args.infer_onsets),
        "latency_seconds": numbers(args.latency),
        "reonset_threshold": [None if v.strip().lower() == "none" else float(v) for v in args.reonset.split(",")],
    }
    t0 = time.perf_counter()
    best, rows = tx.tune_thresholds([c.item for c in clips], grid, transcriber, posteriors)
    print(
        f"\n### Grid ({len(rows)} settings x {len(clips)} clips, {time.perf_counter() - t0:.0f} s), "
        f"top {args.top} by note-onset F1\n"
    )
    columns = list(grid) + ["note_onset_f1", "note_f1", "multipitch_accuracy"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    ranked = sorted(rows, key=lambda r: -r["note_onset_f1"])
    for r in ranked[: args.top]:
        print("| " + " | ".join(f"{r[c]:.3f}" if c in columns[-3:] else str(r[c]) for c in columns) + " |")
    settings = tx.Decoding(**{k: best[k] for k in tx.Decoding.__dataclass_fields__})
    print(f"\nbest: {settings} note_onset_f1 {best['note_onset_f1']:.3f}")
    for label, want in (("mono", False), ("poly", True)):
        subset = [i for i, c in enumerate(clips) if c.polyphonic == want]
        if subset:
            _, (sub,) = tx.tune_thresholds(
                [clips[i].item for i in subset], {}, tx.Transcriber(**asdict(settings)), [posteriors[i] for i in subset]
            )
            print(
                f"  {label} clips: note_onset_f1 {sub['note_onset_f1']:.3f}, note_f1 {sub['note_f1']:.3f}, "
                f"multipitch {sub['multipitch_accuracy']:.3f}"
            )
    best_table = ceilings(clips, posteriors, settings, [], post_seconds)
    print_ceilings(f"Ceilings at the best settings {settings}", best_table, polyphonic)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "recordings": recordings,
                    "clips": len(clips),
                    "default": asdict(default),
                    "default_ceilings": default_table,
                    "best": best,
                    "best_ceilings": best_table,
                    "grid": rows,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
