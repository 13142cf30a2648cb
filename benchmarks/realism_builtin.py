"""Realism on the built-in corpus (figures: docs/benchmarks.md, "Realism"): its "recordings" are FluidSynth
renders, so here the recording's ceiling is a rendered one. The reference is fitted on the training split's
recordings, every clip as the evaluate stage cuts them; the test split's clips are scored as the recording,
Griffin-Lim of its mel, the vocoder's reconstruction and Deep Performer (synthesis model + vocoder).

    python benchmarks/realism_builtin.py --root /work/fresh      # a trained pipeline: data/ and models/
    python benchmarks/realism_builtin.py --root /work/fresh --all   # every variant of realism_ladder.VARIANTS
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.realism_ladder import VARIANTS
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
        "--all", action="store_true", help="every variant of realism_ladder.VARIANTS, not params.yaml's"
    )
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    mel, rate = params.mel, params.mel.sample_rate
    features, audio, models = args.root / "data/features", args.root / "data/audio16k", args.root / "models"
    split = read_split(features, params.split)
    kwargs = {"audio_dir": audio, "clip_frames": mel.clip_frames, "hop_length": mel.hop_length}
    train = clip_audio(ClipDataset(features, split.train, **kwargs))
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
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in systems}  # every system's clips, played once
    for first in range(0, len(test), args.batch):
        batch = collate_clips([test[i] for i in range(first, min(first + args.batch, len(test)))])
        for name, system in systems.items():
            outputs[name].extend(np.asarray(out.audio) for out in system(batch))
    variants = VARIANTS if args.all else {"params.yaml": {}}
    for variant, changes in variants.items():
        config = replace(params.evaluate.realism, **changes)
        start = time.perf_counter()
        reference = RealismReference.fit(train, rate, config)
        print(f"\n{variant}: {reference.frames} reference frames, fitted in {time.perf_counter() - start:.2f} s")
        short = config.n_fft + config.min_frames * config.hop_length
        keep = [i for i, a in enumerate(outputs["Recording"]) if len(a) >= short]  # the evaluate stage's None
        scores = {name: np.array([reference.score(clips[i], rate) for i in keep]) for name, clips in outputs.items()}
        for name, v in scores.items():
            print(f"{name:28s} mean {v.mean():.3f}  median {np.median(v):.3f}  ({len(v)} clips)")
        best = np.bincount(np.argmin(np.stack(list(scores.values())), axis=0), minlength=len(scores))
        print("clips where each system scores best:", dict(zip(scores, best.tolist())))
        means = {name: float(v.mean()) for name, v in scores.items()}
        print("recording ranks first:", min(means, key=means.__getitem__) == "Recording")


if __name__ == "__main__":
    main()
