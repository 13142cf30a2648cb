"""Stage `train_synthesis`: the synthesis model on 5-second clips (models/synthesis).

With ``--ablation NAME`` (stage ``train_ablation@NAME``), the same training for one of the paper's
ablations listed in ``train_synthesis.ablations`` (models/synthesis_NAME).
"""

from __future__ import annotations

from dataclasses import asdict

from pipeline.config import Params
from pipeline.datasets.clips import collate_clips
from pipeline.errors import PipelineError
from pipeline.models.synthesis import SynthesisModel
from pipeline.training.run import data_fingerprint, run_training, seed_everything
from pipeline.training.synthesis_task import SynthesisTask
from stages._common import stage_main
from stages._training import FEATURES, clip_datasets


def run(params: Params, ablation: str | None = None) -> None:
    config = params.train_synthesis
    try:
        kwargs = config.ablation_model(ablation) if ablation else config.model
    except KeyError as err:
        raise PipelineError(str(err.args[0]), "params.yaml") from None
    train_set, val_set, performers = clip_datasets(params.split, params.mel)
    seed_everything(config.train.seed)
    model = SynthesisModel(**{"n_performers": len(performers), "performer_names": performers, **kwargs})
    name = f"synthesis_{ablation}" if ablation else "synthesis"
    logged = {**asdict(config), "ablation": ablation or "none", "model": kwargs}
    run_training(
        name,
        SynthesisTask(model, config.optimizer, params.mel),
        model,
        model.config(),
        train_set,
        val_set,
        collate_clips,
        config.train,
        logged,
        params.mel,
        data_id=data_fingerprint(FEATURES, extra=(train_set.recordings, val_set.recordings)),
        dvc_stage=f"train_ablation@{ablation}" if ablation else None,
    )


if __name__ == "__main__":
    stage_main(run, __doc__, {"ablation": "one of train_synthesis.ablations (default: the full model)"})
