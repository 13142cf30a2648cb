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
    data = clip_datasets(features, performers, params.split, params.mel, audio=audio)
    seed_everything(config.train.seed)
    model = PianoRollHifigan(
        n_performers=len(data.performers), generator=config.generator, performer_names=data.performers
    )
    task = PianoRollHifiganTask(
        model, config, params.mel, steps_per_epoch=max(1, len(data.train) // config.train.batch_size)
    )
    run_training(training_job("hifigan_baseline", config, params, task, model, data, outputs, init_from))


if __name__ == "__main__":
    stage_main(run, __doc__, {**CLIP_PATHS, **AUDIO_PATH, **OUTPUT_PATHS}, TRAINING_OPTIONS)
