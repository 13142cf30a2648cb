"""What a Deep Performer's three models know beside their weights (performers, levels), for whichever
runs them: the torch models (:class:`pipeline.inference.models.PerformerModels`) or their onnxruntime
graphs (:class:`pipeline.inference.runtime.onnx_models.OnnxModels`). Imports no torch."""

from __future__ import annotations

from typing import Any

from pipeline.config import MelConfig
from pipeline.errors import PipelineError
from pipeline.inference.runtime.blend import PerformerBlend, PerformerSpec, parse_performers


class ModelBundle:
    """The performer names, blends and levels of a model bundle, read from the hparams of its
    ``alignment`` and ``synthesis`` model (anything with ``hparams``), with its ``vocoder``, the mel
    recipe ``mel`` and ``source`` (where it was loaded from, for messages)."""

    alignment: Any
    synthesis: Any
    vocoder: Any
    mel: MelConfig
    source: str

    @property
    def performers(self) -> tuple[str, ...]:
        return tuple(self.synthesis.hparams["performer_names"])

    @property
    def known_performers(self) -> str:
        """The performers these models know, for messages: their names (their ids where the models name none)."""
        names = self.performers
        return ", ".join(names) if names else f"0 .. {self.synthesis.hparams['n_performers'] - 1}"

    def performer_id(self, name: str) -> int:
        names = self.performers
        if name in names:
            return names.index(name)
        if not names and name.isdigit() and int(name) < self.synthesis.hparams["n_performers"]:
            return int(name)  # models that name no performers take ids
        raise PipelineError(f"unknown performer {name!r} (these models know: {self.known_performers})", self.source)

    def performer_blend(self, spec: PerformerSpec) -> PerformerBlend:
        """One performer (``"aurora"``) or a blend (``"aurora:0.7,bruno:0.3"`` or ``{"aurora": 0.7,
        "bruno": 0.3}``; :mod:`pipeline.inference.runtime.blend`), resolved to the models' performer ids."""
        weights = parse_performers(spec, self.known_performers, self.source)
        ids: list[int] = []
        for name in weights:
            performer = self.performer_id(name)
            if performer in ids:
                raise PipelineError(
                    f"performer {name!r} is given twice in the blend (these models know: {self.known_performers})",
                    self.source,
                )
            ids.append(performer)
        return PerformerBlend(tuple(weights), tuple(ids), tuple(weights.values()))

    @property
    def level_offset_db(self) -> float:
        """dB the synthesis model's mel falls short of the recordings' level (its calibration, measured
        by its training stage on unseen pieces)."""
        return self.synthesis.calibration.level_offset_db

    def level_db(self, blend: PerformerBlend) -> float | None:
        """The level a performance by ``blend`` is given (dB of mean mel frame power,
        :mod:`pipeline.loudness`): the performer's level in the synthesis model's training recordings
        (a blend: the weighted mean), from its calibration; None where it holds none."""
        levels = self.synthesis.calibration.performer_levels_db
        if not levels:
            return None
        return float(sum(w * levels[i] for i, w in zip(blend.ids, blend.weights)))
