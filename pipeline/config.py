"""Typed view of ``params.yaml``: the single source of truth for every setting.

Each top-level group belongs to one DVC stage (``data`` -> prepare, ``resample``,
``align``, ``mel``). Unknown keys are errors, so a typo never silently falls back
to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipeline.errors import PipelineError

T = TypeVar("T")

TICKS_PER_QUARTER = 24  # score resolution used everywhere (paper §4.1)


@dataclass(frozen=True)
class BuiltinConfig:
    """The rendered corpus: music21 scores played by virtual performers."""

    performers: tuple[str, ...] = ("aurora", "bruno", "chiara", "dmitri")
    violin_pieces: int = 4  # violin I parts of string quartets (monophonic)
    chorale_pieces: int = 2  # Bach chorales, all four voices (polyphonic)
    max_seconds: float = 40.0  # excerpt length per recording, at the performer's tempo
    sample_rate: int = 32000  # rate the "recordings" are rendered at (resample makes 16 kHz)


@dataclass(frozen=True)
class BachViolinConfig:
    url: str = "https://zenodo.org/records/6050245/files/bach-violin-dataset-v1.0.zip"
    md5: str | None = None  # unverified third-party value in REFERENCE.md; set it to enforce
    collections: tuple[str, ...] = ()  # empty = all collections
    max_movements: int | None = None


@dataclass(frozen=True)
class MaestroConfig:
    url: str = "https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/maestro-v3.0.0.zip"
    sha256: str | None = None
    splits: tuple[str, ...] = ("train", "validation", "test")
    max_recordings: int | None = None


@dataclass(frozen=True)
class DataConfig:
    source: str = "builtin"  # builtin | bach-violin | maestro
    root: str | None = None  # an already extracted copy of the dataset (skips the download)
    download_dir: str = "data/download"
    seed: int = 0
    builtin: BuiltinConfig = field(default_factory=BuiltinConfig)
    bach_violin: BachViolinConfig = field(default_factory=BachViolinConfig)
    maestro: MaestroConfig = field(default_factory=MaestroConfig)

    def __post_init__(self) -> None:
        if self.source not in ("builtin", "bach-violin", "maestro"):
            raise PipelineError(
                f"data.source must be builtin, bach-violin or maestro, not {self.source!r}"
            )


@dataclass(frozen=True)
class ResampleConfig:
    sample_rate: int = 16000


@dataclass(frozen=True)
class AlignConfig:
    """Score-to-audio synchronisation (DTW) settings."""

    soundfont: str = "MuseScore_General.sf3"  # reference rendering, deliberately not the corpus's
    program: int = 40  # GM program of the reference rendering (40 violin; 0 piano for MAESTRO)
    feature_rate: int = 100  # DTW frames per second at the finest level
    coarse_rate: int = 10  # frames per second of the first, full DTW
    band_seconds: float = 0.5  # half-width of the fine DTW's band around the coarse path
    onset_weight: float = 1.0  # weight of the onset (DLNCO-like) cost against the chroma cost
    diagonal_weight: float = 1.0  # DTW step weight of a diagonal move (measured: 1 beats the symmetric 2)
    refine_seconds: float = 0.0  # onset refinement search radius (0 disables)
    workers: int = 2  # recordings aligned in parallel (processes)


@dataclass(frozen=True)
class MelConfig:
    """The vocoder's mel recipe (REFERENCE.md §2); shared by every later stage."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    clamp: float = 1e-5


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    resample: ResampleConfig = field(default_factory=ResampleConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    mel: MelConfig = field(default_factory=MelConfig)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value or {}, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise PipelineError(f"{where} must be a list, not {value!r}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_convert(item, v, where) for v in value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise PipelineError(f"{where} must be {tp.__name__}, not {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "params") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise PipelineError(f"{where} must be a mapping, not {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise PipelineError(f"unknown setting(s) {', '.join(f'{where}.{k}' for k in unknown)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read ``params.yaml`` into typed config objects (a missing file means all defaults)."""
    path = Path(path)
    if not path.exists():
        raise PipelineError("parameter file not found", path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise PipelineError(f"not valid YAML ({str(err).splitlines()[0]})", path) from err
    try:
        return from_dict(Params, raw)
    except PipelineError as err:
        raise PipelineError(str(err), path) from err
