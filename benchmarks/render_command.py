"""What a user waits for: `performer render` of a minute of music, the real command, beside its render part.

Writes a MIDI file of ``--seconds`` of built-in violin material (``align_benchmark.long_score``), then
``--repeats`` times each:

* ``command``: wall time of ``performer render SCORE -o OUT --models MODELS`` in a fresh process
  (interpreter start, imports, score reading, model loading, rendering, writing the audio);
* ``render``: ``pipeline.inference.render_score`` alone on the same notes, in this process, models
  already loaded (what ``benchmarks/render_benchmark.py`` calls the render part).

Prints the medians, the real-time factors (seconds per second of audio) and the ratio command /
render; the figures in docs/benchmarks.md ("Render command") come from here.

    python benchmarks/render_command.py [--models models] [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
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
    args = parser.parse_args()

    import torch

    from pipeline.config import load_params
    from pipeline.inference import render_score
    from pipeline.registry.loading import load_models
    from pipeline.scores import read_score

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        score, out = Path(tmp) / "score.mid", Path(tmp) / "out.wav"
        count = write_score(score, args.seconds)
        performer_bin = Path(sys.executable).with_name("performer")
        command = [
            str(performer_bin),
            "render",
            str(score),
            "-o",
            str(out),
            "--models",
            args.models,
            "--threads",
            str(args.threads),
        ]
        walls = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
            walls.append(time.perf_counter() - start)
        models = load_models(args.models, load_params(ROOT / "params.yaml").mel)
        notes = read_score(score)
        performer = models.performers[0]
        with torch.inference_mode():
            render_score(models, notes.subset(range(min(20, len(notes)))), performer)  # warm-up
            renders, audio_s = [], 0.0
            for _ in range(args.repeats):
                start = time.perf_counter()
                result = render_score(models, notes, performer)
                renders.append(time.perf_counter() - start)
                audio_s = result.seconds
    wall, render = statistics.median(walls), statistics.median(renders)
    print(
        f"{platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}; "
        f"{count} notes, {audio_s:.1f} s of audio; medians of {args.repeats}"
    )
    print(f"command {wall:.2f} s (RTF {wall / audio_s:.3f}; runs {', '.join(f'{w:.2f}' for w in walls)})")
    print(f"render part {render:.2f} s (RTF {render / audio_s:.3f}; runs {', '.join(f'{r:.2f}' for r in renders)})")
    print(f"command / render part: {wall / render:.2f}x")


if __name__ == "__main__":
    main()
