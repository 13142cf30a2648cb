"""What a user waits for: `performer render` of a minute of music, the real command, beside its render part.

Writes a MIDI file of ``--seconds`` of built-in violin material (``align_benchmark.long_score``), then
``--repeats`` times each:

* ``command``: wall time of ``performer render SCORE -o OUT --models MODELS --backend B`` in a fresh
  process (interpreter start, imports, score reading, model loading, rendering, writing the audio), for
  each backend (``onnx``: the export_onnx stage's graphs on onnxruntime, no torch imported; ``torch``),
  and ``served``: the same command (``--backend auto``) while ``performer serve`` keeps the models loaded
  (a server started by this script in a private runtime folder; the server's log is checked to have
  done every job, so a command that rendered alone cannot pass for a served one);
* ``render``: ``pipeline.inference.render_score`` alone on the same notes, in this process, models
  already loaded (what ``benchmarks/render_benchmark.py`` calls the render part), for each backend
  (``served`` is compared with the onnx render part: the server renders the export).

Prints the medians, the real-time factors (seconds per second of audio) and the ratio command /
render; the figures in docs/benchmarks.md ("Render command") come from here. The models folder needs
its export (``dvc repro export_onnx``) for the onnx rows.

    python benchmarks/render_command.py [--models models] [--threads 1] [--repeats 5] [--backends onnx,torch,served]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_score(path: Path, seconds: float) -> int:
    """The benchmark score as a type-1 MIDI file (one track, the score's tempo); returns its note count."""
    import mido

    from benchmarks.align_benchmark import long_score

    notes = long_score(seconds).sorted()
    resolution = 480
    scale = resolution / notes.resolution
    events = []
    for onset, duration, pitch, velocity in zip(notes.onset, notes.duration, notes.pitch, notes.velocity):
        start = int(round(onset * scale))
        events.append((start, 1, mido.Message("note_on", note=int(pitch), velocity=int(velocity))))
        events.append((start + max(1, int(round(duration * scale))), 0, mido.Message("note_off", note=int(pitch))))
    track = mido.MidiTrack(
        [
            mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(notes.tempo_qpm), time=0),
            mido.Message("program_change", program=40, time=0),
        ]
    )
    now = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=resolution)
    midi.tracks.append(track)
    midi.save(path)
    return len(notes)


def start_server(performer_bin: Path, models: str, threads: int, env: dict[str, str]) -> subprocess.Popen:
    """`performer serve` for ``models``, once it is ready (its first line on stderr)."""
    command = [str(performer_bin), "serve", "--models", models, "--params", str(ROOT / "params.yaml")]
    command += ["--threads", str(threads), "--idle-minutes", "0"]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert server.stderr is not None
    ready = server.stderr.readline()
    if "serving" not in ready or "(onnx" not in ready:
        server.terminate()
        raise SystemExit(f"the render server did not start on the ONNX export: {ready.strip()}")
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1, help="the command's --threads (and this process's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", default="onnx,torch,served", help="--backend values to time, and served")
    args = parser.parse_args()

    import torch

    from pipeline.config import load_params
    from pipeline.inference import render_score
    from pipeline.inference.onnx_models import OnnxModels
    from pipeline.registry.loading import load_models
    from pipeline.scores import read_score

    torch.set_num_threads(args.threads)
    backends = args.backends.split(",")
    walls: dict[str, list[float]] = {b: [] for b in backends}
    renders: dict[str, list[float]] = {b: [] for b in backends}
    with tempfile.TemporaryDirectory() as tmp:
        score, out = Path(tmp) / "score.mid", Path(tmp) / "out.wav"
        count = write_score(score, args.seconds)
        performer_bin = Path(sys.executable).with_name("performer")
        env = dict(os.environ, PYTHONUNBUFFERED="1", XDG_RUNTIME_DIR=tempfile.mkdtemp(prefix="dp-", dir="/tmp"))
        server = start_server(performer_bin, args.models, args.threads, env) if "served" in backends else None
        try:
            for _ in range(args.repeats):  # interleaved: a drift in the machine's load hits every backend alike
                for backend in backends:
                    command = [str(performer_bin), "render", str(score), "-o", str(out), "--models", args.models]
                    command += ["--threads", str(args.threads), "--params", str(ROOT / "params.yaml")]
                    command += ["--server", "off", "--backend", backend] if backend != "served" else []
                    start = time.perf_counter()
                    subprocess.run(command, check=True, capture_output=True, env=env)
                    walls[backend].append(time.perf_counter() - start)
                    if server is not None and server.stderr is not None and backend == "served":
                        job = server.stderr.readline()
                        assert f"-> {out}: {count} notes" in job, f"the server did not render it: {job}"
        finally:
            if server is not None:
                server.terminate()
                server.wait()
                shutil.rmtree(env["XDG_RUNTIME_DIR"], ignore_errors=True)
        notes = read_score(score)
        bundles = {
            "torch": lambda: load_models(args.models, load_params(ROOT / "params.yaml").mel),
            "onnx": lambda: OnnxModels(Path(args.models) / "onnx", threads=args.threads),
        }
        audio_s = 0.0
        for backend in [b for b in backends if b != "served"]:
            models = bundles[backend]()
            performer = models.performers[0]
            render_score(models, notes.subset(range(min(20, len(notes)))), performer)  # warm-up
            for _ in range(args.repeats):
                start = time.perf_counter()
                result = render_score(models, notes, performer)
                renders[backend].append(time.perf_counter() - start)
                audio_s = result.seconds
    print(
        f"{platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}; "
        f"{count} notes, {audio_s:.1f} s of audio; medians of {args.repeats}"
    )
    if "served" in backends and "onnx" not in backends:
        raise SystemExit("served is compared with the onnx render part: time onnx too")
    renders["served"] = renders.get("onnx", [])
    for backend in backends:
        wall, render = statistics.median(walls[backend]), statistics.median(renders[backend])
        print("while `performer serve` runs:" if backend == "served" else f"--backend {backend}:")
        print(
            f"  command {wall:.2f} s (RTF {wall / audio_s:.3f}; runs {', '.join(f'{w:.2f}' for w in walls[backend])})"
        )
        print(
            f"  render part {render:.2f} s (RTF {render / audio_s:.3f}; "
            f"runs {', '.join(f'{r:.2f}' for r in renders[backend])})"
        )
        print(f"  command / render part: {wall / render:.2f}x")
    if {"served", "onnx"} <= set(backends):
        served, onnx = statistics.median(walls["served"]), statistics.median(walls["onnx"])
        print(f"command, served / onnx alone: {served / onnx:.2f}x")
    if {"onnx", "torch"} <= set(backends):
        onnx_wall, torch_wall = statistics.median(walls["onnx"]), statistics.median(walls["torch"])
        print(
            f"command, onnx / torch: {onnx_wall / torch_wall:.2f}x; onnx command / torch render part: "
            f"{onnx_wall / statistics.median(renders['torch']):.2f}x"
        )


if __name__ == "__main__":
    main()
