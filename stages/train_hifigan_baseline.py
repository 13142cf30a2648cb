"""Stage `train_hifigan_baseline`: the HiFi-GAN piano-roll baseline on the 5-second clips.

The same clips and split as the synthesis model (params.yaml ``split``), each carrying its 16 kHz
audio; trained with the vocoder's GAN losses on random ``segment_frames`` windows.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.models.arguments import check_arguments
from pipeline.models.hifigan import Generator
from pipeline.models.pianoroll_hifigan import PianoRollHifigan
from pipeline.training.pianoroll_hifigan_task import PianoRollHifiganTask
from pipeline.training.run import run_training, seed_everything
from stages._common import stage_main
from stages._training import AUDIO_PATH, CLIP_PATHS, OUTPUT_PATHS, TRAINING_OPTIONS, clip_datasets, training_job


def check_params(params: Params) -> None:
    """The generator block against HiFi-GAN's Generator (its input width is the rolls' projection)."""
    check_arguments(Generator, params.train_hifigan_baseline.generator, "train_hifigan_baseline.generator")


def run(
    params: Params, features: Path, performers: Path, audio: Path, init_from: str | None = None, **outputs: Path
) -> None:
    check_params(params)  # a typo in a model block fails here, before any data is read
    config = params.train_hifigan_baseline
    train_set, val_set, names = clip_datasets(features, performers, params.split, params.mel, audio=audio)
    seed_everything(config.train.seed)
    model = PianoRollHifigan(n_performers=len(names), generator=config.generator, performer_names=names)
    steps_per_epoch = max(1, len(train_set) // config.train.batch_size)
    task = PianoRollHifiganTask(model, config, params.mel, steps_per_epoch)
    recordings = (train_set.recordings, val_set.recordings)
    run_training(
        training_job(
            "hifigan_baseline",
            config,
            params,
            task,
            model,
            train_set,
            val_set,
            data=[features, audio],
            recordings=recordings,
            paths=outputs,
            init_from=init_from,
        )
    )


if __name__ == "__main__":
    stage_main(run, __doc__, {**CLIP_PATHS, **AUDIO_PATH, **OUTPUT_PATHS}, TRAINING_OPTIONS)
