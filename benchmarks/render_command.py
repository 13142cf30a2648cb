"""What a user waits for: `performer render` of a minute of music, the real command, beside its render part.

Writes a MIDI file of ``--seconds`` of built-in violin material (``align_benchmark.long_score``), then
``--repeats`` times each:

* ``command``: wall time of ``performer render SCORE -o OUT --models MODELS --backend B`` in a fresh
  process (interpreter start, imports, score reading, model loading, rendering, writing the audio), for
  each backend (``onnx``: the export_onnx stage's graphs on onnxruntime, no torch imported; ``torch``),
  and ``batch``: one ``performer render`` of ``--batch`` copies of the score with ``--out-dir`` (the
  models loaded once; the default backend, the export), its wall time per score;
* ``render``: ``pipeline.inference.runtime.render.render_score`` alone on the same notes, in this
  process, models already loaded (what ``benchmarks/render_benchmark.py`` calls the render part), for
  each backend (``batch`` is compared with the onnx render part: it renders the export).

Prints the medians, the real-time factors (seconds per second of audio) and the ratio command /
render; the figures in docs/benchmarks.md ("Render command") come from here. The models folder needs
its export (``dvc repro export_onnx``) for the onnx and batch rows.

    python benchmarks/render_command.py [--models models] [--threads 1] [--repeats 5] [--backends onnx,torch,batch]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1, help="the command's --threads (and this process's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=5, help="scores in the batch command")
    parser.add_argument("--backends", default="onnx,torch,batch", help="--backend values to time, and batch")
    args = parser.parse_args()

    import torch

    from pipeline.config import load_params
    from pipeline.inference.runtime.onnx_models import OnnxModels
    from pipeline.inference.runtime.render import render_score
    from pipeline.registry.loading import load_models
    from pipeline.scores import read_score

    torch.set_num_threads(args.threads)
    backends = args.backends.split(",")
    if "batch" in backends and "onnx" not in backends:
        raise SystemExit("batch is compared with the onnx render part: time onnx too")
    walls: dict[str, list[float]] = {b: [] for b in backends}
    renders: dict[str, list[float]] = {b: [] for b in backends}
    with tempfile.TemporaryDirectory() as tmp:
        score, out = Path(tmp) / "score.mid", Path(tmp) / "out.wav"
        count = write_score(score, args.seconds)
        copies = [Path(tmp) / f"score{i}.mid" for i in range(args.batch)]
        for copy in copies:
            shutil.copyfile(score, copy)
        performer_bin = Path(sys.executable).with_name("performer")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        common = ["--models", args.models, "--threads", str(args.threads), "--params", str(ROOT / "params.yaml")]
        for _ in range(args.repeats):  # interleaved: a drift in the machine's load hits every backend alike
            for backend in backends:
                if backend == "batch":
                    folder = Path(tmp) / "batch"
                    command = [str(performer_bin), "render", *map(str, copies), "--out-dir", str(folder), *common]
                else:
                    command = [str(performer_bin), "render", str(score), "-o", str(out), *common]
                    command += ["--backend", backend]
                start = time.perf_counter()
                result = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
                wall = time.perf_counter() - start
                if backend == "batch":
                    written = [line for line in result.stdout.splitlines() if line.startswith("wrote ")]
                    assert len(written) == args.batch and "rendering with torch" not in result.stderr, result
                    wall /= args.batch
                walls[backend].append(wall)
        notes = read_score(score)
        bundles = {
            "torch": lambda: load_models(args.models, load_params(ROOT / "params.yaml").mel),
            "onnx": lambda: OnnxModels(Path(args.models) / "onnx", threads=args.threads),
        }
        audio_s = 0.0
        for backend in [b for b in backends if b != "batch"]:
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
    renders["batch"] = renders.get("onnx", [])
    for backend in backends:
        wall, render = statistics.median(walls[backend]), statistics.median(renders[backend])
        print(f"{args.batch} scores in one command, per score:" if backend == "batch" else f"--backend {backend}:")
        print(
            f"  command {wall:.2f} s (RTF {wall / audio_s:.3f}; runs {', '.join(f'{w:.2f}' for w in walls[backend])})"
        )
        print(
            f"  render part {render:.2f} s (RTF {render / audio_s:.3f}; "
            f"runs {', '.join(f'{r:.2f}' for r in renders[backend])})"
        )
        print(f"  command / render part: {wall / render:.2f}x")
    if {"onnx", "torch"} <= set(backends):
        onnx_wall, torch_wall = statistics.median(walls["onnx"]), statistics.median(walls["torch"])
        print(
            f"command, onnx / torch: {onnx_wall / torch_wall:.2f}x; onnx command / torch render part: "
            f"{onnx_wall / statistics.median(renders['torch']):.2f}x"
        )


if __name__ == "__main__":
    main()
