"""Stage `train_hifigan`: the vocoder (params ``train_hifigan.vocoder``) on waveform segments.

With ``--variant v2`` (stage ``train_hifigan_v2``), the same training with params ``train_hifigan_v2``
(the paper's HiFi-GAN V2, for the evaluate table's paper row).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.datasets.segments import AudioSegments, collate_segments
from pipeline.errors import PipelineError
from pipeline.models.arguments import MEL_RECIPE, check_arguments
from pipeline.models.vocoders import VOCODER_KINDS, vocoder_for_mel
from pipeline.training.hifigan_task import HifiganTask, recording_excitation
from pipeline.training.run import run_training, seed_everything
from stages._common import stage_main
from stages._training import (
    AUDIO_PATH,
    OUTPUT_PATHS,
    TRAINING_OPTIONS,
    TrainingData,
    training_job,
    training_recordings,
)

VARIANTS = {"v2": "train_hifigan_v2"}  # variant -> its params group
FEATURES_PATH = {"features": "input: the mel stage's folder (the split's index.csv; the notes of each recording)"}


def check_params(params: Params, variant: str | None = None) -> None:
    """The generator block against the chosen vocoder's constructor (the recipe comes from the mel group)."""
    if variant is not None and variant not in VARIANTS:
        raise PipelineError(f"unknown vocoder variant {variant!r} (known: {', '.join(VARIANTS)})")
    group = VARIANTS[variant] if variant else "train_hifigan"
    config = getattr(params, group)
    check_arguments(VOCODER_KINDS[config.vocoder], config.generator, f"{group}.generator", MEL_RECIPE)


def run(
    params: Params,
    features: Path,
    audio: Path,
    variant: str | None = None,
    init_from: str | None = None,
    **outputs: Path,
) -> None:
    check_params(params, variant)  # a typo in a model block fails here, before any data is read
    config = getattr(params, VARIANTS[variant]) if variant else params.train_hifigan
    train_ids, val_ids = training_recordings(features, params.split)
    seed_everything(config.train.seed)
    vocoder = vocoder_for_mel(config.vocoder, config.generator, params.mel)
    # a source-filter vocoder also learns from each segment's notes (their excitation)
    excitation = recording_excitation(features, audio, vocoder, params.mel.sample_rate) if vocoder.excitation else None
    data = TrainingData(
        AudioSegments(audio, train_ids, config.segment_samples, config.segment_hop, excitation),
        AudioSegments(audio, val_ids, config.segment_samples, excitation=excitation),
        recordings=(train_ids, val_ids),
        inputs=(audio, features) if excitation else (audio,),
        collate=collate_segments,
    )
    task = HifiganTask(vocoder, config, params.mel, steps_per_epoch=max(1, len(data.train) // config.train.batch_size))
    name = f"hifigan_{variant}" if variant else "hifigan"
    run_training(training_job(name, config, params, task, vocoder, data, outputs, init_from))


if __name__ == "__main__":
    stage_main(
        run,
        __doc__,
        {**FEATURES_PATH, **AUDIO_PATH, **OUTPUT_PATHS},
        {"variant": "v2: the paper's HiFi-GAN V2 (params train_hifigan_v2)", **TRAINING_OPTIONS},
    )
