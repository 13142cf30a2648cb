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

**Named pieces** (``test_pieces``, ``validation_pieces``: the index's ``piece`` ids) override the hash:
every recording of a named piece is in that part, whatever ``by`` and the hash say. The hash then
places only the remaining units, and fills a part's share only when no piece of that part is named:
a user naming test pieces gets exactly those as test (validation still drawn by its share, unless
named too). A named piece the corpus lacks is an error listing the pieces it has.

Recordings with audio and annotation-only ones (index ``has_audio`` false: notes and human timing, no
sound) are split alike, by piece: no recording of a test piece, of either kind, is trained on. A
held-out recording is ``excluded`` (scored by no one) when the models could not know its performer:
a recording with audio when its performer has no training recording *with audio* (synthesis could not
render them), an annotation-only one when its performer has no training recording at all (the
alignment model learns every performer's timing from either kind).

Training stages read ``train`` and ``validation`` (those that need audio: :meth:`Split.with_audio`);
only the evaluate stage reads ``test``.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field

import pandas as pd

from pipeline.config import SplitConfig
from pipeline.errors import PipelineError

PARTS = ("train", "validation", "test")


@dataclass(frozen=True)
class Split:
    """Recording ids of each part (sorted); ``excluded``: held-out recordings of performers the models
    could not know (their performer embedding would be untrained), scored by no one; ``annotation_only``:
    the recordings (of any part) without audio."""

    train: list[str]
    validation: list[str]
    test: list[str]
    excluded: list[str] = field(default_factory=list)
    annotation_only: list[str] = field(default_factory=list)

    def with_audio(self) -> Split:
        """The recordings with audio only: what every stage that needs sound (synthesis, the vocoders,
        audio evaluation) reads."""
        silent = set(self.annotation_only)
        keep = lambda ids: [i for i in ids if i not in silent]  # noqa: E731
        return Split(keep(self.train), keep(self.validation), keep(self.test), keep(self.excluded), [])

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


def _named_parts(pieces: set[str], config: SplitConfig) -> dict[str, str]:
    """Piece -> part for the pieces ``config`` names; an unknown piece is an error naming the key."""
    named: dict[str, str] = {}
    for part, key in (("test", "test_pieces"), ("validation", "validation_pieces")):
        for piece in getattr(config, key):
            if piece not in pieces:
                known = ", ".join(sorted(pieces))
                raise PipelineError(f"split.{key}: piece {piece!r} is not in the corpus (its pieces: {known})")
            named[piece] = part
    return named


def split_corpus(index: pd.DataFrame, config: SplitConfig) -> Split:
    """Split the recordings of ``index`` (columns id, piece, performer; polyphonic, has_audio if known:
    a missing has_audio means every recording has audio) by ``config``."""
    missing = [c for c in ("id", "piece", "performer") if c not in index.columns]
    if missing:
        raise PipelineError(f"the recording index lacks column(s) {', '.join(missing)}")
    ids = [str(i) for i in index["id"]]
    piece_of = dict(zip(ids, (str(p) for p in index["piece"])))
    named = _named_parts(set(piece_of.values()), config)
    unit_of = piece_of if config.by == "piece" else {i: i for i in ids}
    polyphonic_rows = index["polyphonic"].map(_is_true) if "polyphonic" in index else pd.Series(False, index.index)
    polyphonic_units: set[str] = {unit_of[i] for i, poly in zip(ids, polyphonic_rows) if poly}
    strata: dict[bool, list[str]] = {}
    for unit in sorted({unit_of[i] for i in ids if piece_of[i] not in named}):
        key = unit in polyphonic_units if config.stratify else False
        strata.setdefault(key, []).append(unit)
    # the hash fills a part's share only when none of its pieces are named
    hashed = dataclasses.replace(
        config,
        test_share=0.0 if config.test_pieces else config.test_share,
        validation_share=0.0 if config.validation_pieces else config.validation_share,
    )
    part_of_unit: dict[str, str] = {}
    for units in strata.values():
        part_of_unit.update(_assign(units, hashed))

    part = {i: named.get(piece_of[i]) or part_of_unit[unit_of[i]] for i in ids}
    performer = dict(zip(ids, (str(p) for p in index["performer"])))
    audible = dict(zip(ids, index["has_audio"].map(_is_true))) if "has_audio" in index else dict.fromkeys(ids, True)
    trained = {performer[i] for i in ids if part[i] == "train"}
    trained_audio = {performer[i] for i in ids if part[i] == "train" and audible[i]}
    excluded = []
    for i in ids:
        known = trained_audio if audible[i] else trained
        if part[i] != "train" and performer[i] not in known:
            if config.by == "recording" and piece_of[i] not in named:
                part[i] = "train"  # no piece can leak: give the performer a training recording
                trained.add(performer[i])
                if audible[i]:
                    trained_audio.add(performer[i])
            else:
                excluded.append(i)
    return Split(
        train=sorted(i for i in ids if part[i] == "train" and i not in excluded),
        validation=sorted(i for i in ids if part[i] == "validation" and i not in excluded),
        test=sorted(i for i in ids if part[i] == "test" and i not in excluded),
        excluded=sorted(excluded),
        annotation_only=sorted(i for i in ids if not audible[i]),
    )


def read_split(features_dir, config: SplitConfig) -> Split:
    """The split of the mel stage's ``index.csv`` in ``features_dir``."""
    from pathlib import Path

    path = Path(features_dir) / "index.csv"
    if not path.is_file():
        raise PipelineError("feature index not found (run the mel stage)", path)
    index = pd.read_csv(path, dtype={"id": str, "piece": str, "performer": str})
    try:
        return split_corpus(index, config)
    except PipelineError as err:  # name the index the pieces were looked for in
        raise err if err.path is not None else PipelineError(str(err), path) from err
