"""Stage `train_hifigan`: the HiFi-GAN V2 vocoder on waveform segments (models/hifigan)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from pipeline.config import Params
from pipeline.datasets.segments import AudioSegments, collate_segments
from pipeline.models.hifigan import Generator
from pipeline.training.hifigan_task import HifiganTask, recording_excitation
from pipeline.training.run import data_fingerprint, run_training, seed_everything
from stages._common import stage_main
from stages._training import FEATURES, training_recordings

AUDIO = Path("data/audio16k")


def run(params: Params) -> None:
    config = params.train_hifigan
    train_ids, val_ids = training_recordings(params.split)
    seed_everything(config.train.seed)
    generator = Generator(**config.generator)
    # the source-filter vocoder also learns from each segment's notes (their excitation)
    excitation = recording_excitation(FEATURES, AUDIO, generator, params.mel.sample_rate) if generator.excitation else None
    train_set = AudioSegments(AUDIO, train_ids, config.segment_samples, config.segment_hop, excitation)
    val_set = AudioSegments(AUDIO, val_ids, config.segment_samples, excitation=excitation)
    steps_per_epoch = max(1, len(train_set) // config.train.batch_size)
    task = HifiganTask(generator, config, params.mel, steps_per_epoch)
    run_training("hifigan", task, generator, generator.generator_hparams(), train_set, val_set, collate_segments,
                 config.train, asdict(config), data_id=data_fingerprint(AUDIO, *([FEATURES] if excitation else []), extra=(train_ids, val_ids)))


if __name__ == "__main__":
    stage_main(run, __doc__)
