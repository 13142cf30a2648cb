"""Realism on the built-in corpus (figures: docs/benchmarks.md, "Realism"): its "recordings" are FluidSynth
renders, so here the recording's ceiling is a rendered one. The reference is fitted on the training split's
recordings, every clip as the evaluate stage cuts them; the test split's clips are scored as the recording,
Griffin-Lim of its mel, the vocoder's reconstruction and Deep Performer (synthesis model + vocoder).

    python benchmarks/realism_builtin.py --root /work/fresh      # a trained pipeline: data/ and models/
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from pipeline.config import load_params
from pipeline.datasets.clips import ClipDataset, collate_clips
from pipeline.datasets.split import read_split
from pipeline.evaluation.realism import RealismReference
from pipeline.evaluation.systems import (
    griffin_lim_reconstruction,
    load_vocoder,
    recording,
    synthesis_system,
    vocoder_reconstruction,
)

REPO = Path(__file__).resolve().parents[1]


def clip_audio(dataset: ClipDataset) -> list[np.ndarray]:
    """Every clip's recording ``(frames * hop,)``, as the evaluate stage's Recording row plays it."""
    return [np.asarray(dataset[i]["audio"]) for i in range(len(dataset))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="a trained pipeline's folder (data/, models/)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--variant", help="envelope/distance/weighting instead of params.yaml's, e.g. relative/diagonal/dims"
    )
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    mel, rate = params.mel, params.mel.sample_rate
    features, audio, models = args.root / "data/features", args.root / "data/audio16k", args.root / "models"
    split = read_split(features, params.split)
    kwargs = {"audio_dir": audio, "clip_frames": mel.clip_frames, "hop_length": mel.hop_length}
    config = params.evaluate.realism
    if args.variant:
        envelope, distance, weighting = args.variant.split("/")
        config = replace(config, envelope=envelope, distance=distance, weighting=weighting)
    start = time.perf_counter()
    reference = RealismReference.fit(clip_audio(ClipDataset(features, split.train, **kwargs)), rate, config)
    print(f"reference: {reference.frames} frames of the training split, fitted in {time.perf_counter() - start:.2f} s")
    vocoder = load_vocoder(models)
    systems = {
        "Recording": recording(mel.hop_length),
        "Griffin-Lim reconstruction": griffin_lim_reconstruction(
            mel, params.train_performancenet.griffin_lim_iterations
        ),
        "Vocoder reconstruction": vocoder_reconstruction(vocoder, rate),
        "Deep Performer": synthesis_system(models, "synthesis", vocoder, "Deep Performer", rate),
    }
    test = ClipDataset(features, split.test, **kwargs)
    scores: dict[str, list[float]] = {name: [] for name in systems}
    short = config.n_fft + config.min_frames * config.hop_length
    for first in range(0, len(test), args.batch):
        batch = collate_clips([test[i] for i in range(first, min(first + args.batch, len(test)))])
        for name, system in systems.items():
            for out in system(batch):
                if len(out.audio) >= short:  # a recording's last few frames: no score (the evaluate stage's None)
                    scores[name].append(reference.score(out.audio, rate))
    for name, values in scores.items():
        v = np.asarray(values)
        print(f"{name:28s} mean {v.mean():.3f}  median {np.median(v):.3f}  ({len(v)} clips)")
    best = np.argmin(np.stack([scores[n] for n in systems]), axis=0)
    print(
        "clips where each system scores best:", dict(zip(systems, np.bincount(best, minlength=len(systems)).tolist()))
    )


if __name__ == "__main__":
    main()
