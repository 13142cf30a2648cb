"""Stage `train_performancenet`: the PerformanceNet baseline on the 5-second clips.

The same clips and split as the synthesis model, each carrying its 16 kHz audio; the target is the
log1p power spectrogram on the mel recipe's frames (so it is scored on the same frames).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from pipeline.config import Params
from pipeline.datasets.clips import collate_clips
from pipeline.models.arguments import check_arguments
from pipeline.models.performancenet import PerformanceNet
from pipeline.training.performancenet_task import PerformanceNetTask
from pipeline.training.run import data_fingerprint, run_training, seed_everything
from stages._common import stage_main
from stages._training import AUDIO_PATH, CLIP_PATHS, OUTPUT_PATHS, clip_datasets, training_outputs


def check_params(params: Params) -> None:
    """The model block against PerformanceNet's constructor (bins come from the mel group)."""
    check_arguments(PerformanceNet, params.train_performancenet.model, "train_performancenet.model", ("bins",))


def run(params: Params, features: Path, performers: Path, audio: Path, **outputs: Path) -> None:
    check_params(params)  # a typo in a model block fails here, before any data is read
    config = params.train_performancenet
    train_set, val_set, _ = clip_datasets(features, performers, params.split, params.mel, audio=audio)
    seed_everything(config.train.seed)
    model = PerformanceNet(**{"bins": params.mel.n_fft // 2 + 1, **config.model})
    run_training(
        "performancenet",
        PerformanceNetTask(model, config, params.mel),
        model,
        model.config(),
        train_set,
        val_set,
        collate_clips,
        config.train,
        asdict(config),
        params.mel,
        training_outputs(**outputs),
        data_id=data_fingerprint(features, audio, extra=(train_set.recordings, val_set.recordings)),
    )


if __name__ == "__main__":
    stage_main(run, __doc__, {**CLIP_PATHS, **AUDIO_PATH, **OUTPUT_PATHS})
