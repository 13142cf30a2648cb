"""Stage `train_synthesis`: the synthesis model on 5-second clips (models/synthesis)."""

from __future__ import annotations

from dataclasses import asdict

from pipeline.config import Params
from pipeline.datasets.clips import collate_clips
from pipeline.models.synthesis import SynthesisModel
from pipeline.training.run import data_fingerprint, run_training
from pipeline.training.synthesis_task import SynthesisTask
from stages._common import stage_main
from stages._training import FEATURES, clip_datasets


def run(params: Params) -> None:
    config = params.train_synthesis
    train_set, val_set, performers = clip_datasets(config.validation_share, config.train.seed)
    model = SynthesisModel(**{"n_performers": len(performers), "performer_names": performers, **config.model})
    run_training("synthesis", SynthesisTask(model, config.optimizer), model, model.config(), train_set, val_set,
                 collate_clips, config.train, asdict(config),
                 data_id=data_fingerprint(FEATURES, extra=(train_set.recordings, val_set.recordings)))


if __name__ == "__main__":
    stage_main(run, __doc__)
