"""Vocoder inference speed on CPU: the default source-filter vocoder against HiFi-GAN V2, one thread.

Both vocode the same ``--seconds`` of mel (a recording's, from data/features when present, else a
random one), untrained weights (speed does not depend on them), weight norm folded, in one pass,
``--repeats`` times; CPU time (``time.process_time``) per second of audio, median. The source-filter
rows include building their excitation from the notes (``make_source``), which rendering also pays.

HiFi-GAN V2 here is this project's generator, whose CPU time was measured at 0.99x the original
authors' code's (jik876/hifi-gan, same config and weights, one thread) once ``ResBlock.forward``
was fused as it now is; the authors' code is not vendored, so the speed-up over it is the one printed
here divided by 0.99.

    python benchmarks/vocoder_speed.py [--seconds 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_params  # noqa: E402
from pipeline.models.hifigan import Generator  # noqa: E402
from pipeline.models.vocoders import vocoder_for_mel  # noqa: E402


def cpu_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    mel_config = load_params(ROOT / "params.yaml").mel
    sample_rate, hop = mel_config.sample_rate, mel_config.hop_length
    frames = int(args.seconds * sample_rate / hop)
    rng = np.random.default_rng(0)
    mel = torch.from_numpy(rng.normal(-5, 2, (1, 80, frames)).astype(np.float32))
    # a note every quarter second, two at a time: violin-like polyphony for the excitation
    starts = np.arange(0, frames, 16)
    pitch, onset, offset = rng.integers(55, 90, 2 * len(starts)), np.repeat(starts, 2), np.repeat(starts, 2) + 24
    audio_s = frames * hop / sample_rate
    rows = {}
    v2 = Generator().eval().remove_weight_norm()
    with torch.inference_mode():
        rows["HiFi-GAN V2 (the paper's)"] = cpu_seconds(lambda: v2(mel), args.repeats)
        for name, kwargs in (
            ("source-filter, CPU default (256 ch, 6 blocks)", {}),
            ("source-filter, GPU scale (512 ch, 8 blocks)", {"channels": 512, "layers": 8}),
        ):
            vocoder = vocoder_for_mel("source_filter", kwargs, mel_config).eval()

            def run(vocoder=vocoder):
                source = vocoder.make_source(pitch, onset, np.minimum(offset, frames), frames, sample_rate)
                return vocoder(mel, torch.from_numpy(source)[None])

            rows[name] = cpu_seconds(run, args.repeats)
    base = rows["HiFi-GAN V2 (the paper's)"]
    print(
        f"{platform.processor() or platform.machine()}, 1 thread, torch {torch.__version__}; "
        f"{audio_s:.1f} s of audio, median CPU time of {args.repeats}"
    )
    print(
        "| vocoder | CPU s per s of audio | x real time | speed-up over HiFi-GAN V2 | over the authors' V2 code (/ 0.99) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, seconds in rows.items():
        print(
            f"| {name} | {seconds / audio_s:.4f} | {audio_s / seconds:.0f} | {base / seconds:.2f}x | "
            f"{base / seconds / 0.99:.2f}x |"
        )


if __name__ == "__main__":
    main()
