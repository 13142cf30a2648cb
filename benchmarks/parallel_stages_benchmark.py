"""Training stages side by side: does giving each its share of the cores pay?

`performer flow run` starts independent stages at the same time (the training stages, the ablations). Each
is a PyTorch process that, left alone, starts one thread per core. This benchmark runs the synthesis model's
training step (the CPU default of params.yaml, batch 8 five-second clips) in worker processes and reports
steps per second per process and in total for:

* one process alone, all cores (the reference: what `dvc repro` does, one stage at a time), and alone with
  half the threads;
* two processes side by side, each with a thread per core (the baseline: the flow before the thread budget);
* two processes side by side, cores // 2 threads each (what the flow does now: OMP_NUM_THREADS per stage).

    python benchmarks/parallel_stages_benchmark.py [--steps 40] [--repeats 3]

Figures: docs/benchmarks.md, "Stages side by side".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 313  # a 5-second clip at 16 kHz, hop 256
NOTES = 80  # notes in a dense five-second clip


def worker(steps: int) -> None:
    import torch
    import yaml

    from pipeline.models.synthesis import SynthesisModel

    params = yaml.safe_load((ROOT / "params.yaml").read_text())["train_synthesis"]
    batch_size = params["train"]["batch_size"]
    torch.manual_seed(0)
    model = SynthesisModel(n_performers=4, **params["model"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    onset_frame = torch.sort(torch.randint(0, FRAMES - 1, (batch_size, NOTES)), dim=1).values
    batch = dict(
        pitch=torch.randint(40, 90, (batch_size, NOTES)),
        onset=torch.sort(torch.randint(0, 480, (batch_size, NOTES)), dim=1).values,
        duration=torch.randint(1, 96, (batch_size, NOTES)),
        onset_frame=onset_frame,
        offset_frame=(onset_frame + torch.randint(1, 30, (batch_size, NOTES))).clamp(max=FRAMES),
        note_mask=torch.ones(batch_size, NOTES, dtype=torch.bool),
        performer=torch.randint(0, 4, (batch_size,)),
        frame_mask=torch.ones(batch_size, FRAMES, dtype=torch.bool),
    )
    target = torch.randn(batch_size, 80, FRAMES)

    def step() -> None:
        loss = model.loss(model(**batch), target, batch["frame_mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - start
    print(json.dumps({"steps_per_s": steps / elapsed, "threads": torch.get_num_threads()}))


def side_by_side(processes: int, threads: int | None, steps: int) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)
        if threads:
            env[var] = str(threads)
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", "--steps", str(steps)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"error: a worker failed (exit {proc.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.steps)
        return

    cores = os.cpu_count() or 1
    cases = [
        ("1 process alone, thread per core (reference)", 1, None),
        (f"1 process alone, {max(1, cores // 2)} thread(s)", 1, max(1, cores // 2)),
        ("2 side by side, thread per core each (baseline)", 2, None),
        (f"2 side by side, {max(1, cores // 2)} thread(s) each (flow budget)", 2, max(1, cores // 2)),
    ]
    per_process: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    total: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    threads_seen: dict[str, int] = {}
    for repeat in range(args.repeats):
        for name, processes, threads in cases:  # interleaved, so drift hits every case alike
            results = side_by_side(processes, threads, args.steps)
            rates = [r["steps_per_s"] for r in results]
            per_process[name].extend(rates)
            total[name].append(sum(rates))
            threads_seen[name] = results[0]["threads"]
            print(f"repeat {repeat + 1}: {name}: {', '.join(f'{r:.2f}' for r in rates)} steps/s", file=sys.stderr)

    print(
        f"\n{platform.processor() or platform.machine()}, {cores} cores, torch threads as listed; "
        f"synthesis model of params.yaml, batch 8 x {FRAMES} frames; median of {args.repeats} runs "
        f"x {args.steps} steps\n"
    )
    print("| case | torch threads | steps/s per process | steps/s in total |")
    print("| --- | --- | --- | --- |")
    for name, _, _ in cases:
        print(
            f"| {name} | {threads_seen[name]} | {statistics.median(per_process[name]):.2f} | "
            f"{statistics.median(total[name]):.2f} |"
        )


if __name__ == "__main__":
    main()
