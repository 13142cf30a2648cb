"""Peak memory and wall time of `performer perform` on long generated scores (docs/benchmarks.md, "perform memory").

For each ``--minutes`` value: writes a MIDI file of that many minutes at 120 qpm (a two-note melody in
quarter notes, 120 notes a minute, like tests/test_bad_input.py's ``long.mid``), runs
``python -m pipeline perform SCORE -o OUT.wav --performer PERFORMER`` in a fresh process and reads its
peak RSS (``ru_maxrss`` of that child, from ``os.wait4``) and wall time.

    python benchmarks/perform_memory.py --minutes 10 40 [--performer aurora] [--sample-rate HZ]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_midi(path: Path, minutes: float, qpm: float = 120.0) -> int:
    """A type-0 MIDI file of alternating C4/D4 quarter notes lasting ``minutes`` at ``qpm``; returns its note count."""
    import mido

    n = int(round(minutes * qpm))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm), time=0)])
    for i in range(n):
        pitch = 60 if i % 2 == 0 else 62
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=480))
    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(path)
    return n


def measure(argv: list[str]) -> tuple[int, float, int, str]:
    """``(exit status, wall seconds, peak RSS in bytes, stderr)`` of a command in a fresh process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - started, usage.ru_maxrss * 1024, err  # ru_maxrss: KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 40.0])
    parser.add_argument("--performer", default="aurora")
    parser.add_argument("--sample-rate", type=int, default=None, help="default: the command's (params.yaml)")
    parser.add_argument("--suffix", default=".wav", choices=[".wav", ".flac"])
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    print("| score | notes | audio written | wall time | peak RSS |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            score, out = Path(tmp) / f"{minutes:g}min.mid", Path(tmp) / f"{minutes:g}min{args.suffix}"
            notes = write_midi(score, minutes)
            argv = [sys.executable, "-m", "pipeline", "perform", str(score), "-o", str(out)]
            argv += ["--performer", args.performer]
            if args.sample_rate:
                argv += ["--sample-rate", str(args.sample_rate)]
            os.environ.update(env)
            code, wall, peak, err = measure(argv)
            if code:
                sys.exit(f"perform failed ({code}): {err[-2000:]}")
            import soundfile as sf

            info = sf.info(str(out))
            print(
                f"| {minutes:g} min | {notes} | {info.duration / 60:.1f} min, {info.samplerate} Hz, {info.subtype} "
                f"| {wall:.1f} s | {peak / 2**20:.0f} MB |",
                flush=True,
            )


if __name__ == "__main__":
    main()
