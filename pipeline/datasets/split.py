"""One train / validation / test split for the whole pipeline (params.yaml ``split``).

By default the unit is the **piece**: every recording of a test piece is held out, so the test set
is unseen scores played by performers the models know. ``by: recording`` splits single recordings
instead (the same piece may then be heard in training played by someone else).

Each unit gets a position ``u`` in [0, 1) from a hash of (seed, unit name). Units with
``u < test_share`` are test, the next ``validation_share`` validation, the rest train, so a unit's
part hardly depends on which other units exist. Small corpora would often draw too few test units
from the hash alone, so each part also gets at least ``round(share x units)`` units (lowest ``u``
first) and at least one unit stays in train. Adding recordings of existing pieces never moves
anything; adding a piece can move at most the unit at each boundary.
With ``stratify`` the shares are drawn separately from monophonic and polyphonic units, so both
kinds of material are tested.

Training stages read ``train`` and ``validation``; only the evaluate stage reads ``test``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import pandas as pd

from pipeline.config import SplitConfig
from pipeline.errors import PipelineError

PARTS = ("train", "validation", "test")


@dataclass(frozen=True)
class Split:
    """Recording ids of each part (sorted); ``excluded``: held-out recordings of performers that no
    training recording has (their performer embedding would be untrained), scored by no one."""

    train: list[str]
    validation: list[str]
    test: list[str]
    excluded: list[str] = field(default_factory=list)

    def part(self, name: str) -> list[str]:
        if name not in PARTS:
            raise ValueError(f"split part must be one of {PARTS}, not {name!r}")
        return getattr(self, name)


def unit_position(seed: int, unit: str) -> float:
    """Where ``unit`` falls in [0, 1) for ``seed`` (crc32: the same on every machine and Python)."""
    return zlib.crc32(f"{seed}:{unit}".encode()) / 2**32


def _is_true(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def _assign(units: list[str], config: SplitConfig) -> dict[str, str]:
    """Part of each unit of one stratum."""
    position = {u: unit_position(config.seed, u) for u in units}
    ranked = sorted(units, key=lambda u: (position[u], u))
    n = len(ranked)
    t, v = config.test_share, config.validation_share
    # the hash band, but never fewer than the share asks for (small corpora would often draw none)
    n_test = max(sum(position[u] < t for u in units), round(t * n))
    n_val = max(sum(t <= position[u] < t + v for u in units), round(v * n))
    room = max(0, n - 1)  # one unit at least stays in train
    n_test = min(n_test, room)
    n_val = min(n_val, room - n_test)
    return {
        unit: "test" if i < n_test else "validation" if i < n_test + n_val else "train" for i, unit in enumerate(ranked)
    }


def split_corpus(index: pd.DataFrame, config: SplitConfig) -> Split:
    """Split the recordings of ``index`` (columns id, piece, performer, polyphonic) by ``config``."""
    missing = [c for c in ("id", "piece", "performer") if c not in index.columns]
    if missing:
        raise PipelineError(f"the recording index lacks column(s) {', '.join(missing)}")
    ids = [str(i) for i in index["id"]]
    unit_of = dict(zip(ids, (str(p) for p in index["piece"]))) if config.by == "piece" else {i: i for i in ids}
    polyphonic_rows = index["polyphonic"].map(_is_true) if "polyphonic" in index else pd.Series(False, index.index)
    polyphonic_units: set[str] = {unit_of[i] for i, poly in zip(ids, polyphonic_rows) if poly}
    strata: dict[bool, list[str]] = {}
    for unit in sorted(set(unit_of.values())):
        key = unit in polyphonic_units if config.stratify else False
        strata.setdefault(key, []).append(unit)
    part_of_unit: dict[str, str] = {}
    for units in strata.values():
        part_of_unit.update(_assign(units, config))

    part = {i: part_of_unit[unit_of[i]] for i in ids}
    performer = dict(zip(ids, (str(p) for p in index["performer"])))
    trained = {performer[i] for i in ids if part[i] == "train"}
    excluded = []
    for i in ids:
        if part[i] != "train" and performer[i] not in trained:
            if config.by == "recording":
                part[i] = "train"  # no piece can leak: give the performer a training recording
                trained.add(performer[i])
            else:
                excluded.append(i)
    return Split(
        train=sorted(i for i in ids if part[i] == "train" and i not in excluded),
        validation=sorted(i for i in ids if part[i] == "validation" and i not in excluded),
        test=sorted(i for i in ids if part[i] == "test" and i not in excluded),
        excluded=sorted(excluded),
    )


def read_split(features_dir, config: SplitConfig) -> Split:
    """The split of the mel stage's ``index.csv`` in ``features_dir``."""
    from pathlib import Path

    path = Path(features_dir) / "index.csv"
    if not path.is_file():
        raise PipelineError("feature index not found (run the mel stage)", path)
    index = pd.read_csv(path, dtype={"id": str, "piece": str, "performer": str})
    return split_corpus(index, config)
