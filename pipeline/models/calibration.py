"""A trained model's calibration: what its training stage measured on data, stored beside its weights.

A constructor argument is chosen (params.yaml, the corpus); a calibration value is measured, and no
layer of the network uses it: each performer's level in the training recordings, and the dB by which
the model's output falls short of the recordings' level on its validation clips (pipeline.loudness).
It is the ``calibration`` block of a model file (pipeline.models.persistence) and the
``calibration`` of a :class:`pipeline.models.base.Model` or of an exported network; rendering and
evaluation read it from there. Imports no torch, so the ONNX render path can use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["Calibration"]


@dataclass(frozen=True)
class Calibration:
    """``level_offset_db``: dB added to the model's output so it plays at the recordings' level (a mel
    shift for the synthesis model, a gain for a vocoder); 0 where not measured.
    ``performer_levels_db``: each performer's level in the training recordings (dB of mean mel frame
    power, in embedding order; `performer render --loudness performer` plays at it); empty where not
    measured."""

    level_offset_db: float = 0.0
    performer_levels_db: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        levels = tuple(float(level) for level in self.performer_levels_db)
        object.__setattr__(self, "level_offset_db", float(self.level_offset_db))
        object.__setattr__(self, "performer_levels_db", levels)
        if not math.isfinite(self.level_offset_db):
            raise ValueError(f"level_offset_db must be a finite number of dB, not {self.level_offset_db}")
        if not all(math.isfinite(level) for level in levels):
            raise ValueError(f"performer levels must be finite dB values, not {levels}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (floats, a list) for a model file or JSON."""
        record = asdict(self)
        record["performer_levels_db"] = list(self.performer_levels_db)
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Calibration:
        """The block as :meth:`to_dict` wrote it; a key that is not a field is an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise ValueError(f"unknown calibration values: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**record)
