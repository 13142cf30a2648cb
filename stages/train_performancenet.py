"""Stage `train_performancenet`: the PerformanceNet baseline on the 5-second clips.

The same clips and split as the synthesis model, each carrying its 16 kHz audio; the target is the
log1p power spectrogram on the mel recipe's frames (so it is scored on the same frames).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.models.arguments import check_arguments
from pipeline.models.performancenet import PerformanceNet
from pipeline.training.performancenet_task import PerformanceNetTask
from pipeline.training.run import run_training, seed_everything
from stages._common import stage_main
from stages._training import AUDIO_PATH, CLIP_PATHS, OUTPUT_PATHS, TRAINING_OPTIONS, clip_datasets, training_job


def check_params(params: Params) -> None:
    """The model block against PerformanceNet's constructor (bins come from the mel group)."""
    check_arguments(PerformanceNet, params.train_performancenet.model, "train_performancenet.model", ("bins",))


def run(
    params: Params, features: Path, performers: Path, audio: Path, init_from: str | None = None, **outputs: Path
) -> None:
    check_params(params)  # a typo in a model block fails here, before any data is read
    config = params.train_performancenet
    data = clip_datasets(features, performers, params.split, params.mel, audio=audio)
    seed_everything(config.train.seed)
    model = PerformanceNet(**{"bins": params.mel.n_fft // 2 + 1, **config.model})
    task = PerformanceNetTask(model, config, params.mel)
    run_training(training_job("performancenet", config, params, task, model, data, outputs, init_from))


if __name__ == "__main__":
    stage_main(run, __doc__, {**CLIP_PATHS, **AUDIO_PATH, **OUTPUT_PATHS}, TRAINING_OPTIONS)
