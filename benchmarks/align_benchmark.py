"""Score-to-audio alignment benchmark on a long rendered recording (figures: docs/benchmarks.md, "Alignment").

Builds a ~10-minute "recording": built-in violin pieces (violin I parts from the music21 corpus,
concatenated at one tempo) played by a virtual performer, whose note onsets are the ground truth.
Then aligns it with

* ``ours``: ``pipeline.alignment.align.align_score_to_audio`` with the default ``AlignConfig``
  (reference rendering, STFT chroma + onset features, multi-resolution banded DTW);
* ``baseline``: the Bach Violin Dataset authors' recipe: a MuseScore General reference rendering
  (plain, dry), CQT magnitudes with hop 512 of both signals, full ``librosa.sequence.dtw`` with
  the cosine metric, note onsets mapped through the path.

Each run is a fresh Python subprocess, so its peak resident memory is its own (``VmHWM`` of
/proc/self/status, which unlike ``ru_maxrss`` does not inherit the parent's high-water mark
across exec). Time is the wall time of the alignment call: reference rendering, features of
both signals, DTW, note mapping. Audio loading and interpreter start-up are left out of the
time; their memory is in the peak and is also reported alone (``RSS before``).

    python benchmarks/align_benchmark.py                       # 10 min, aurora, ours x3, baseline x1
    python benchmarks/align_benchmark.py --performers aurora bruno --json bench.json
    python benchmarks/align_benchmark.py --minutes 5 --skip-baseline
    python benchmarks/align_benchmark.py --corpus /tmp/raw2   # accuracy of ours on a prepared corpus

A corpus is a folder in the normalised layout with reference alignments, e.g. the built-in one:
``prepare_builtin(replace(load_params().data.builtin, violin_pieces=4, chorale_pieces=2, max_seconds=40),
Path("/tmp/raw2"))``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_params  # noqa: E402

SAMPLE_RATE = load_params(ROOT / "params.yaml").resample.sample_rate  # the pipeline's audio rate
BASELINE_HOP = 512
METHOD_NAMES = ("ours", "baseline")


# --------------------------------------------------------------------------- test recording


def long_score(score_seconds: float):
    """Built-in violin pieces end to end (a quarter rest apart, at the first one's tempo), cut to ``score_seconds``."""
    from pipeline.datasets.builtin import VIOLIN_PIECES, excerpt, load_piece
    from pipeline.scores import NoteTable

    tempo = VIOLIN_PIECES[0][1]
    columns: list[list[np.ndarray]] = [[], [], [], []]
    shift = 0
    for path, piece_tempo in VIOLIN_PIECES:
        notes = load_piece(path, piece_tempo, monophonic=True)
        scale = tempo / notes.tempo_qpm  # ticks at this piece's tempo -> ticks at the common tempo
        onset = np.round(notes.onset * scale).astype(np.int64) + shift
        duration = np.maximum(1, np.round(notes.duration * scale).astype(np.int64))
        for column, values in zip(columns, (onset, duration, notes.pitch, notes.velocity)):
            column.append(values)
        shift = int((onset + duration).max()) + notes.resolution
        if shift / notes.resolution * 60.0 / tempo >= score_seconds:
            break
    onset, duration, pitch, velocity = (np.concatenate(c) for c in columns)
    table = NoteTable(onset, duration, pitch, velocity, np.zeros_like(onset), tempo_qpm=tempo, name="align_benchmark")
    return excerpt(table.sorted(), score_seconds)


def build_recording(workdir: Path, minutes: float, performer_name: str) -> Path:
    """Render (once; cached in ``workdir``) the benchmark recording; returns its folder."""
    from pipeline.audio import write_audio
    from pipeline.performers import get_performer
    from pipeline.rendering import render

    folder = workdir / f"{performer_name}_{minutes:g}min"
    if (folder / "truth.npz").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    performer = get_performer(performer_name)
    notes = long_score(minutes * 60.0 * performer.tempo_factor)  # the performer plays tempo_factor x faster
    perf = performer.perform(notes, seed=0)
    audio = render(perf, performer.instrument, SAMPLE_RATE).mean(axis=1)
    write_audio(folder / "recording.flac", audio, SAMPLE_RATE, subtype="PCM_16")
    notes.to_csv(folder / "score.csv")
    np.savez(folder / "truth.npz", onset=perf.onset, offset=perf.offset)
    return folder


# --------------------------------------------------------------------------- methods (run in a child)


def baseline_dtw_bytes(frames_ref: int, frames_perf: int) -> int:
    """librosa.sequence.dtw's big arrays: float64 cost and accumulated cost, int32 steps."""
    return (frames_ref + 1) * (frames_perf + 1) * (8 + 8 + 4)


def align(method: str, notes, audio: np.ndarray) -> tuple[np.ndarray, dict]:
    """Performed onsets of ``notes`` in ``audio`` by ``method``, plus details worth reporting."""
    from pipeline.alignment.align import align_score_to_audio, map_frames, warp_function
    from pipeline.alignment.reference import render_reference

    config = load_params(ROOT / "params.yaml").align
    if method == "ours":
        return align_score_to_audio(notes, audio, SAMPLE_RATE, config).onset, {}

    import librosa

    score_on, score_off = notes.seconds()
    reference = render_reference(
        score_on, score_off, notes.pitch, notes.velocity, config.soundfont, config.program, SAMPLE_RATE
    )
    ref = np.abs(librosa.cqt(reference, sr=SAMPLE_RATE, hop_length=BASELINE_HOP))
    perf = np.abs(librosa.cqt(audio, sr=SAMPLE_RATE, hop_length=BASELINE_HOP))
    info = {
        "dtw_frames": [ref.shape[1], perf.shape[1]],
        "dtw_matrices_gb": round(baseline_dtw_bytes(ref.shape[1], perf.shape[1]) / 2**30, 2),
    }
    print(json.dumps(info), file=sys.stderr, flush=True)  # reaches the report even if the DTW dies
    _, path = librosa.sequence.dtw(X=ref, Y=perf, metric="cosine")
    rows, cols = warp_function(path[::-1])
    rate = SAMPLE_RATE / BASELINE_HOP
    return map_frames(score_on * rate, rows, cols) / rate, info


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def child(method: str, folder: Path, mem_limit_gb: float) -> dict:
    """One measured run; the result is printed as one JSON line."""
    from pipeline.audio import load_audio
    from pipeline.scores import NoteTable

    if mem_limit_gb > 0:  # fail with MemoryError instead of pushing the machine into the OOM killer
        limit = int(mem_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    audio, rate = load_audio(folder / "recording.flac", SAMPLE_RATE)
    notes = NoteTable.from_csv(folder / "score.csv")
    truth = np.load(folder / "truth.npz")["onset"]
    result = {"method": method, "recording": folder.name, "audio_seconds": len(audio) / rate, "notes": len(notes)}
    import pipeline.alignment.align  # noqa: F401  (imports are not part of the timed alignment)

    if method == "baseline":
        import librosa  # noqa: F401
    result["rss_before_mb"] = round(peak_rss_mb(), 1)
    start = time.perf_counter()
    try:
        onset, info = align(method, notes, audio)
        result.update(info)
    except MemoryError as err:
        result.update(ok=False, error=f"MemoryError ({err}) under a {mem_limit_gb:g} GB address-space limit")
        onset = None
    result["seconds"] = round(time.perf_counter() - start, 3)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if onset is not None:
        errors = np.abs(onset - truth) * 1000.0
        result.update(
            ok=True,
            median_ms=round(float(np.median(errors)), 2),
            mean_ms=round(float(np.mean(errors)), 2),
            p95_ms=round(float(np.percentile(errors, 95)), 2),
            within_50ms=round(float(np.mean(errors <= 50.0)), 4),
        )
    return result


def run_child(method: str, folder: Path, mem_limit_gb: float) -> dict:
    cmd = [sys.executable, __file__, "--child", method, "--folder", str(folder), "--mem-limit-gb", str(mem_limit_gb)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        return {"method": method, "recording": folder.name, "ok": False, "error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- corpus accuracy


def _align_recording(task: tuple[Path, object, dict]) -> tuple[bool, np.ndarray, float]:
    from pipeline.alignment.align import align_score_to_audio
    from pipeline.audio import load_audio
    from pipeline.datasets.layout import read_reference
    from pipeline.scores import NoteTable

    root, rec, overrides = task
    audio, rate = load_audio(root / rec.audio, SAMPLE_RATE)
    notes = NoteTable.from_csv(root / rec.notes)
    start = time.perf_counter()
    config = replace(load_params(ROOT / "params.yaml").align, **overrides)
    onset = align_score_to_audio(notes, audio, rate, config, tuning_cents=rec.tuning_cents).onset
    seconds = time.perf_counter() - start
    truth, _ = read_reference(root / rec.reference)
    return rec.polyphonic, np.abs(onset - truth) * 1000.0, seconds


def corpus_accuracy(root: Path, overrides: dict, workers: int) -> list[dict]:
    """Onset errors of our method on every recording of a prepared corpus, per material."""
    from concurrent.futures import ProcessPoolExecutor

    from pipeline.datasets.layout import read_manifest

    recordings = [r for r in read_manifest(root) if r.reference]
    with ProcessPoolExecutor(workers) as pool:
        done = list(pool.map(_align_recording, [(root, r, overrides) for r in recordings]))
    rows = []
    for poly in (False, True):
        parts = [d for d in done if d[0] == poly]
        if not parts:
            continue
        err = np.concatenate([d[1] for d in parts])
        rows.append(
            {
                "corpus": root.name,
                "material": "polyphonic" if poly else "monophonic",
                "recordings": len(parts),
                "notes": int(err.size),
                "median_ms": round(float(np.median(err)), 2),
                "mean_ms": round(float(err.mean()), 2),
                "p95_ms": round(float(np.percentile(err, 95)), 2),
                "within_50ms": round(float(np.mean(err <= 50)), 4),
                "seconds_per_recording": round(float(np.mean([d[2] for d in parts])), 2),
            }
        )
    return rows


def corpus_table(rows: list[dict]) -> str:
    out = ["| corpus | material | recordings | notes | median | mean | p95 | within 50 ms |", "|" + "---|" * 8]
    for r in rows:
        out.append(
            f"| {r['corpus']} | {r['material']} | {r['recordings']} | {r['notes']} | {r['median_ms']:.1f} ms"
            f" | {r['mean_ms']:.1f} ms | {r['p95_ms']:.1f} ms | {100 * r['within_50ms']:.1f} % |"
        )
    return "\n".join(out)


# --------------------------------------------------------------------------- report


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{os.cpu_count()}-core {model}"


def summarise(runs: list[dict]) -> dict:
    """Median time and largest peak over the successful runs of one method on one recording."""
    ok = [r for r in runs if r.get("ok")]
    if not ok:
        return runs[-1]
    out = dict(ok[0])
    out["seconds_all"] = [r["seconds"] for r in ok]
    out["seconds"] = float(np.median(out["seconds_all"]))
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    out["seconds_per_5min"] = round(out["seconds"] * 300.0 / out["audio_seconds"], 2)
    return out


def table(results: list[dict]) -> str:
    rows = [
        (
            "| recording | method | time (median of runs) | time per 5 min | peak RSS | RSS before "
            "| median | mean | p95 | within 50 ms |"
        ),
        "|" + "---|" * 10,
    ]
    for r in results:
        if not r.get("ok"):
            rows.append(f"| {r['recording']} | {r['method']} | failed: {r.get('error', '?')} | | | | | | | |")
            continue
        runs = len(r["seconds_all"])
        rows.append(
            f"| {r['recording']} ({r['audio_seconds'] / 60:.1f} min) | {r['method']} | {r['seconds']:.1f} s ({runs})"
            f" | {r['seconds_per_5min']:.1f} s | {r['peak_rss_mb']:.0f} MB | {r['rss_before_mb']:.0f} MB"
            f" | {r['median_ms']:.1f} ms | {r['mean_ms']:.1f} ms | {r['p95_ms']:.1f} ms"
            f" | {100 * r['within_50ms']:.1f} % |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the test recording (default 10)")
    parser.add_argument("--performers", nargs="+", default=["aurora"], help="virtual performers to record")
    parser.add_argument("--repeats", type=int, default=3, help="runs of our method; the median time is reported")
    parser.add_argument("--baseline-repeats", type=int, default=1, help="runs of the baseline")
    parser.add_argument("--skip-baseline", action="store_true", help="only our method")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/align_benchmark"), help="cache of the recordings")
    parser.add_argument("--mem-limit-gb", type=float, default=20.0, help="address-space limit of each run (0: none)")
    parser.add_argument("--corpus", type=Path, nargs="+", help="instead: accuracy of ours on prepared corpora")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="AlignConfig overrides (--corpus)")
    parser.add_argument("--workers", type=int, default=2, help="processes for --corpus")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", choices=METHOD_NAMES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.child, args.folder, args.mem_limit_gb)))
        return 0

    if args.corpus:
        defaults = load_params(ROOT / "params.yaml").align
        overrides = {}
        for item in args.set:
            key, _, value = item.partition("=")
            overrides[key] = type(getattr(defaults, key))(value)
        rows = [row for root in args.corpus for row in corpus_accuracy(root, overrides, args.workers)]
        print(corpus_table(rows))
        if args.json:
            args.json.write_text(json.dumps({"overrides": overrides, "results": rows}, indent=2) + "\n")
        return 0

    results = []
    for performer in args.performers:
        start = time.perf_counter()
        folder = build_recording(args.workdir, args.minutes, performer)
        print(f"recording {folder} ready in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        plan = [("ours", args.repeats)] + ([] if args.skip_baseline else [("baseline", args.baseline_repeats)])
        for method, repeats in plan:
            runs = []
            for k in range(repeats):
                runs.append(run_child(method, folder, args.mem_limit_gb))
                print(f"{method} run {k + 1}/{repeats}: {json.dumps(runs[-1])}", file=sys.stderr)
            results.append(summarise(runs))
    print(table(results))
    print(f"\nmachine: {machine()}, Python {platform.python_version()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "results": results}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
