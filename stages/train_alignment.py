"""Stage `train_alignment`: the alignment model on 5-second clips of every train / validation recording,
annotation-only ones (notes and human timing, no audio) included: it reads notes, never the mel."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.models.alignment import AlignmentModel
from pipeline.models.arguments import PERFORMERS, check_arguments
from pipeline.training.alignment_task import AlignmentTask
from pipeline.training.run import run_training, seed_everything
from stages._common import stage_main
from stages._training import CLIP_PATHS, OUTPUT_PATHS, TRAINING_OPTIONS, clip_datasets, training_job


def check_params(params: Params) -> None:
    """The model block against AlignmentModel's constructor (pipeline.models.arguments)."""
    check_arguments(AlignmentModel, params.train_alignment.model, "train_alignment.model", (*PERFORMERS, "frame_rate"))


def run(params: Params, features: Path, performers: Path, init_from: str | None = None, **outputs: Path) -> None:
    check_params(params)  # a typo in a model block fails here, before any data is read
    config = params.train_alignment
    data = clip_datasets(features, performers, params.split, params.mel, notes="starting", needs_audio=False)
    seed_everything(config.train.seed)
    model = AlignmentModel(
        **{"n_performers": len(data.performers), "performer_names": data.performers, **config.model},
        frame_rate=params.mel.sample_rate / params.mel.hop_length,
    )
    task = AlignmentTask(model, config.optimizer)
    run_training(training_job("alignment", config, params, task, model, data, outputs, init_from))


if __name__ == "__main__":
    stage_main(run, __doc__, {**CLIP_PATHS, **OUTPUT_PATHS}, TRAINING_OPTIONS)
