"""Vocoder variants side by side: each one's reconstruction of the recordings' own mels on the test
clips, with the recording (ceiling) and Griffin-Lim (floor) beside them.

    PYTHONPATH=. python benchmarks/vocoder_variants.py models/hifigan /tmp/nsf/models/hifigan [--clips N]

Prints one row per variant: note-onset F1, raw pitch accuracy, multi-pitch accuracy, log-mel MSE,
MR-STFT, level (RMS of the output over the recording's, dB), |DC| and seconds per clip; the figures
in docs/benchmarks.md ("Vocoder variants") come from here. Runs on the same split, clips, metrics and
transcriber settings as the evaluate stage (params.yaml).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.config import load_params
from pipeline.datasets.clips import ClipDataset, collate_clips
from pipeline.datasets.split import read_split
from pipeline.evaluation import systems as sys_
from pipeline.evaluation.latency import choose_latency
from pipeline.evaluation.run import transcriber
from pipeline.evaluation.scoring import ClipScorer, Scores, clip_infos, run_systems
from pipeline.models.vocoders import load_vocoder

FEATURES, AUDIO = Path("data/features"), Path("data/audio16k")
SHOWN = ("note_onset_f1", "raw_pitch_accuracy", "multipitch_accuracy", "audio_mel_mse", "mr_stft")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("vocoders", nargs="+", help="folders holding a vocoder model.pt")
    parser.add_argument("--clips", type=int, default=0, help="first N test clips (0: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = load_params()
    index = pd.read_csv(FEATURES / "index.csv", dtype={"id": str})
    polyphonic = {r: str(p).lower() in ("true", "1") for r, p in zip(index["id"], index["polyphonic"])}
    test = read_split(FEATURES, params.split).test
    clips = ClipDataset(
        FEATURES, test, audio_dir=AUDIO, clip_frames=params.mel.clip_frames, hop_length=params.mel.hop_length
    )
    order = list(range(len(clips)))[: args.clips or None]
    rate = params.mel.sample_rate
    systems = {}
    for folder in args.vocoders:
        vocoder = load_vocoder(Path(folder) / "model.pt")
        systems[folder] = sys_.vocoder_reconstruction(vocoder, rate)
    systems["Griffin-Lim"] = sys_.griffin_lim_reconstruction(
        params.mel, params.train_performancenet.griffin_lim_iterations
    )
    systems["Recording"] = sys_.recording(params.mel.hop_length)
    split = read_split(FEATURES, params.split)
    train = ClipDataset(
        FEATURES, split.train, audio_dir=AUDIO, clip_frames=params.mel.clip_frames, hop_length=params.mel.hop_length
    )
    config = params.evaluate.transcription
    latency = choose_latency(train, config.latency_clips, tuple(config.latencies), transcriber(params), params.mel)
    scorer = ClipScorer(params.mel, transcriber(params), latency.latency)
    scores, levels, seconds = Scores(), {s: [] for s in systems}, dict.fromkeys(systems, 0.0)

    def timed(name, system):
        def run(batch):
            start = time.process_time()
            outputs = system(batch)
            seconds[name] += time.process_time() - start
            for j, out in enumerate(outputs):  # level against the recording, and the DC
                reference = batch["audio"][j, : len(out.audio)].numpy().astype(np.float64)
                rms = np.sqrt(np.mean(np.square(out.audio, dtype=np.float64)))
                ratio = max(rms, 1e-9) / max(np.sqrt(np.mean(reference**2)), 1e-9)
                levels[name].append((20 * np.log10(ratio), abs(float(np.mean(out.audio)))))
            return outputs

        return run

    def batches():
        for i in range(0, len(order), 8):
            chunk = order[i : i + 8]
            batch = collate_clips([clips[j] for j in chunk])
            yield batch, clip_infos(batch, [clips.refs[j] for j in chunk], polyphonic)

    run_systems({n: timed(n, s) for n, s in systems.items()}, batches(), scores, scorer)
    print(f"{len(order)} test clips; vocoders reconstruct the recording's own mel; {latency.describe()}")
    print("| variant | " + " | ".join(SHOWN) + " | level dB | max abs DC | CPU s per clip |")
    print("| --- |" + " --- |" * (len(SHOWN) + 3))
    for name in systems:
        means = [
            np.mean(list(scores.values[name][m].values())) if scores.values[name][m] else float("nan") for m in SHOWN
        ]
        level = np.array(levels[name])
        print(
            f"| {name} | "
            + " | ".join(f"{v:.3f}" for v in means)
            + f" | {level[:, 0].mean():+.1f} | {level[:, 1].max():.4f} | {seconds[name] / len(order):.3f} |"
        )


if __name__ == "__main__":
    main()
