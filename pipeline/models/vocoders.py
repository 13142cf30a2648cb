"""The vocoders a Deep Performer can use, by name (``train_hifigan.vocoder`` in params.yaml).

* ``hifigan``: HiFi-GAN V2 (:class:`pipeline.models.hifigan.Generator`), the paper's; with
  ``excitation: true`` the source-filter HiFi-GAN (NSF-HiFiGAN's idea, the score's notes as source).
* ``source_filter``: :class:`pipeline.models.source_filter.SourceFilterVocoder`, the score-informed
  source-filter vocoder with an inverse-STFT output (the CPU default: docs/benchmarks.md).

A checkpoint's hparams carry ``kind`` (absent in checkpoints written before there was a choice:
those are HiFi-GAN), so ``load_model(path, build_vocoder)`` rebuilds whichever was trained.
"""

from __future__ import annotations

import math
from typing import Any

from pipeline.config import VOCODERS, MelConfig
from pipeline.errors import PipelineError
from pipeline.models.hifigan import Generator
from pipeline.models.source_filter import SourceFilterVocoder

Vocoder = Generator | SourceFilterVocoder
VOCODER_KINDS: dict[str, type] = {"hifigan": Generator, "source_filter": SourceFilterVocoder}
assert tuple(VOCODER_KINDS) == VOCODERS, "pipeline.config.VOCODERS must name the vocoders built here"


def build_vocoder(kind: str = "hifigan", level_offset_db: float = 0.0, **kwargs: Any) -> Vocoder:
    """The vocoder ``kind`` built with its constructor keyword arguments.

    ``level_offset_db``: the dB its output falls short of the recordings' level on its validation clips,
    measured by its training stage after training (:meth:`pipeline.training.hifigan_task.HifiganTask.calibrate`)
    and added back by :func:`pipeline.inference.runtime.render.vocode`; not a setting of the network, so it is
    an attribute beside it (0 for vocoders trained before it was measured)."""
    if kind not in VOCODER_KINDS:
        raise ValueError(f"unknown vocoder {kind!r} (known: {', '.join(VOCODER_KINDS)})")
    if not math.isfinite(level_offset_db):
        raise ValueError(f"level_offset_db must be a finite number of dB, not {level_offset_db}")
    vocoder = VOCODER_KINDS[kind](**kwargs)
    vocoder.level_offset_db = float(level_offset_db)
    return vocoder


def vocoder_kind(model: Vocoder) -> str:
    for kind, cls in VOCODER_KINDS.items():
        if type(model) is cls:
            return kind
    raise TypeError(f"not a vocoder: {type(model).__name__}")


def vocoder_hparams(model: Vocoder) -> dict[str, Any]:
    """What :func:`build_vocoder` needs to rebuild ``model``: its kind and constructor arguments, and its
    level offset once measured (absent before: a checkpoint written then still resumes)."""
    offset = float(getattr(model, "level_offset_db", 0.0))
    return {"kind": vocoder_kind(model), **model.config(), **({"level_offset_db": offset} if offset else {})}


def vocoder_for_mel(kind: str, kwargs: dict[str, Any], mel: MelConfig) -> Vocoder:
    """The vocoder ``kind`` for the pipeline's mel recipe: the source-filter vocoder takes the recipe
    from ``mel`` (params.yaml's one place for it); HiFi-GAN's upsampling must multiply to its hop."""
    if kind == "source_filter":
        if mel.win_length != mel.n_fft:
            raise PipelineError(
                f"the source-filter vocoder needs mel.win_length == mel.n_fft ({mel.win_length} vs {mel.n_fft})"
            )
        recipe = {
            "in_channels": mel.n_mels,
            "sample_rate": mel.sample_rate,
            "n_fft": mel.n_fft,
            "hop_length": mel.hop_length,
            "fmin": mel.fmin,
            "fmax": mel.fmax,
        }
        clash = sorted(k for k in recipe if k in kwargs)
        if clash:
            raise PipelineError(f"set {', '.join(clash)} in the mel params group, not in the vocoder's")
        return build_vocoder(kind, **recipe, **kwargs)
    vocoder = build_vocoder(kind, **{"in_channels": mel.n_mels, **kwargs})
    if vocoder.hop_length != mel.hop_length:
        raise PipelineError(
            f"the vocoder's upsampling makes hop {vocoder.hop_length}, the mel's hop is {mel.hop_length}"
        )
    return vocoder
