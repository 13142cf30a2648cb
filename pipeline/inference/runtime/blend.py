"""Who plays a render: one performer or a blend of several (``--performer aurora:0.7,bruno:0.3``).

A blend mixes the performer embeddings of both the alignment model (timing) and the synthesis model
(timbre): each model gets the weighted sum of its performers' embeddings instead of one of them.

Spec: ``NAME`` or ``NAME:WEIGHT,NAME:WEIGHT,...`` (a name without a weight counts 1, so
``aurora,bruno`` is an even mix); or a mapping ``{name: weight}``. Weights are finite and >= 0, at
least one > 0, and are normalised to sum 1; each name at most once.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError

PerformerSpec = str | Mapping[str, float]


def parse_performers(spec: PerformerSpec, known: str = "", source: str | Path | None = None) -> dict[str, float]:
    """``{name: weight}`` of a performer spec, weights normalised to sum 1, in the spec's order.

    ``known`` (the performers the models know, for the messages): every fault is a one-line
    :class:`PipelineError` naming it and them (and ``source``, the models' folder or URI)."""
    knows = f" (these models know: {known})" if known else ""

    def fault(message: str) -> PipelineError:
        return PipelineError(f"{message}{knows}", source)

    pairs: list[tuple[str, object]] = []
    if isinstance(spec, str):
        if not spec.strip():
            raise fault("empty performer: give NAME or NAME:WEIGHT,NAME:WEIGHT")
        for item in spec.split(","):
            name, sep, weight = item.partition(":")
            name = name.strip()
            if not name:
                raise fault(f"performer blend {spec!r} has an empty name (expected NAME:WEIGHT,NAME:WEIGHT)")
            if ":" in weight:
                raise fault(f"performer blend {spec!r}: {item.strip()!r} is not NAME:WEIGHT")
            pairs.append((name, weight.strip() if sep else 1.0))
    elif isinstance(spec, Mapping):
        if not spec:
            raise fault("empty performer blend: name at least one performer")
        for key, value in spec.items():
            if not str(key).strip():
                raise fault("performer blend has an empty name")
            pairs.append((str(key).strip(), value))
    else:
        raise fault(f"a performer is a name or a blend NAME:WEIGHT,... or a mapping, not {type(spec).__name__}")

    blend: dict[str, float] = {}
    for name, raw in pairs:
        if name in blend:
            raise fault(f"performer {name!r} is given twice in the blend")
        blend[name] = _weight(name, raw, fault)
    total = math.fsum(blend.values())
    if not total > 0:
        raise fault("the performer blend's weights are all 0: give at least one weight > 0")
    return {name: weight / total for name, weight in blend.items()}


def _weight(name: str, raw: object, fault: Callable[[str], PipelineError]) -> float:
    if isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            raise fault(f"performer {name!r} has weight {raw!r}, not a number") from None
    elif isinstance(raw, numbers.Real) and not isinstance(raw, bool):
        value = float(raw)
    else:
        raise fault(f"performer {name!r} has weight {raw!r}, not a number")
    if not math.isfinite(value) or value < 0:
        raise fault(f"performer {name!r} has weight {raw}: weights must be finite and >= 0")
    return value


@dataclass(frozen=True)
class PerformerBlend:
    """One performer or a blend, resolved against the models: the names as given, their ids in the
    models' performer embeddings and their weights (normalised, sum 1)."""

    names: tuple[str, ...]
    ids: tuple[int, ...]
    weights: tuple[float, ...]

    @property
    def single(self) -> int | None:
        """The id of the only performer with a weight > 0 (a 1.0/0.0 blend too), None for a real mix:
        such a render takes the models' plain lookup, so it equals the single performer's exactly."""
        playing = [i for i, w in zip(self.ids, self.weights) if w > 0]
        return playing[0] if len(playing) == 1 else None

    @property
    def main_id(self) -> int:
        """The id of the heaviest performer (the ``performer_id`` a blended item still carries)."""
        return self.ids[int(np.argmax(self.weights))]

    def vector(self, n_performers: int) -> np.ndarray:
        """(n_performers,) float32 weights over a model's performer embeddings."""
        out = np.zeros(n_performers, np.float32)
        for i, w in zip(self.ids, self.weights):
            out[i] = w
        return out

    def __str__(self) -> str:
        if len(self.names) == 1:
            return self.names[0]
        return ",".join(f"{name}:{weight:.3g}" for name, weight in zip(self.names, self.weights))
