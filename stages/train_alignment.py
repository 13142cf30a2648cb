"""Stage `train_alignment`: the alignment model on 5-second clips (models/alignment)."""

from __future__ import annotations

from dataclasses import asdict

from pipeline.config import Params
from pipeline.datasets.clips import collate_clips
from pipeline.models.alignment import AlignmentModel
from pipeline.training.alignment_task import AlignmentTask
from pipeline.training.run import data_fingerprint, run_training, seed_everything
from stages._common import stage_main
from stages._training import FEATURES, clip_datasets


def run(params: Params) -> None:
    config = params.train_alignment
    train_set, val_set, performers = clip_datasets(params.split, params.mel, notes="starting")
    seed_everything(config.train.seed)
    model = AlignmentModel(
        **{"n_performers": len(performers), "performer_names": performers, **config.model},
        frame_rate=params.mel.sample_rate / params.mel.hop_length,
    )
    hparams = model.config()
    run_training(
        "alignment",
        AlignmentTask(model, config.optimizer),
        model,
        hparams,
        train_set,
        val_set,
        collate_clips,
        config.train,
        asdict(config),
        params.mel,
        data_id=data_fingerprint(FEATURES, extra=(train_set.recordings, val_set.recordings)),
    )


if __name__ == "__main__":
    stage_main(run, __doc__)
