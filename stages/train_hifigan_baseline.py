"""Stage `train_hifigan_baseline`: the HiFi-GAN piano-roll baseline on the 5-second clips (models/hifigan_baseline).

The same clips and split as the synthesis model (params.yaml ``split``), each
carrying its 16 kHz audio; trained with the vocoder's GAN losses on random ``segment_frames`` windows.
"""

from __future__ import annotations

from dataclasses import asdict

from pipeline.config import Params
from pipeline.datasets.clips import collate_clips
from pipeline.models.pianoroll_hifigan import PianoRollHifigan
from pipeline.training.pianoroll_hifigan_task import PianoRollHifiganTask
from pipeline.training.run import data_fingerprint, run_training, seed_everything
from stages._baselines import AUDIO, audio_clip_datasets
from stages._common import stage_main
from stages._training import FEATURES


def run(params: Params) -> None:
    config = params.train_hifigan_baseline
    train_set, val_set, performers = audio_clip_datasets(params.split, params.mel)
    seed_everything(config.train.seed)
    model = PianoRollHifigan(n_performers=len(performers), generator=config.generator, performer_names=performers)
    steps_per_epoch = max(1, len(train_set) // config.train.batch_size)
    task = PianoRollHifiganTask(model, config, params.mel, steps_per_epoch)
    run_training(
        "hifigan_baseline",
        task,
        model,
        model.config(),
        train_set,
        val_set,
        collate_clips,
        config.train,
        asdict(config),
        params.mel,
        data_id=data_fingerprint(FEATURES, AUDIO, extra=(train_set.recordings, val_set.recordings)),
    )


if __name__ == "__main__":
    stage_main(run, __doc__)
