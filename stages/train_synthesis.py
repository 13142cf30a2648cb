"""Stage `train_synthesis`: the synthesis model on 5-second clips.

With ``--ablation NAME`` (stage ``train_ablation@NAME``), the same training for one of the paper's
ablations listed in ``train_synthesis.ablations``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from pipeline.config import Params
from pipeline.errors import PipelineError
from pipeline.models.arguments import PERFORMERS, SYNTHESIS_MEL_RECIPE, check_arguments
from pipeline.models.calibration import Calibration
from pipeline.models.synthesis import SynthesisModel
from pipeline.training.run import run_training, seed_everything
from pipeline.training.synthesis_task import SynthesisTask
from stages._common import stage_main
from stages._training import CLIP_PATHS, OUTPUT_PATHS, TRAINING_OPTIONS, clip_datasets, training_job


def check_params(params: Params) -> None:
    """The model block and each ablation's overrides against SynthesisModel's constructor."""
    config = params.train_synthesis
    check_arguments(SynthesisModel, config.model, "train_synthesis.model", PERFORMERS + SYNTHESIS_MEL_RECIPE)
    for name, overrides in config.ablations.items():
        where = f"train_synthesis.ablations.{name}"
        check_arguments(SynthesisModel, overrides or {}, where, PERFORMERS + SYNTHESIS_MEL_RECIPE)


def run(
    params: Params,
    features: Path,
    performers: Path,
    ablation: str | None = None,
    init_from: str | None = None,
    **outputs: Path,
) -> None:
    check_params(params)  # a typo in a model block fails here, before any data is read
    config = params.train_synthesis
    try:
        kwargs = config.ablation_model(ablation) if ablation else config.model
    except KeyError as err:
        raise PipelineError(str(err.args[0]), "params.yaml") from None
    data = clip_datasets(features, performers, params.split, params.mel)
    seed_everything(config.train.seed)
    recipe = {key: getattr(params.mel, key) for key in SYNTHESIS_MEL_RECIPE}  # the harmonic prior's mel
    names = data.performers
    model = SynthesisModel(**{"n_performers": len(names), "performer_names": names, **recipe, **kwargs})
    # each performer's level in its training recordings: what `performer render --loudness performer` plays at
    levels = Calibration(performer_levels_db=data.train.performer_levels_db(len(names)))
    task = SynthesisTask(model, config.optimizer, params.mel)
    name = f"synthesis_{ablation}" if ablation else "synthesis"
    settings = {**asdict(config), "ablation": ablation or "none", "model": kwargs}
    run_training(
        training_job(
            name,
            config,
            params,
            task,
            model,
            data,
            outputs,
            init_from,
            settings=settings,
            calibration=levels,
            dvc_stage=f"train_ablation@{ablation}" if ablation else None,
        )
    )


if __name__ == "__main__":
    stage_main(
        run,
        __doc__,
        {**CLIP_PATHS, **OUTPUT_PATHS},
        {"ablation": "one of train_synthesis.ablations (default: the full model)", **TRAINING_OPTIONS},
    )
