"""Typed view of ``params.yaml``: the single source of truth for every setting.

Each top-level group belongs to one DVC stage (``data`` -> prepare, ``resample``,
``align``, ``mel``). Unknown keys are errors, so a typo never silently falls back
to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml

from pipeline.errors import PipelineError

T = TypeVar("T")

TICKS_PER_QUARTER = 24  # score resolution used everywhere (paper §4.1)


@dataclass(frozen=True)
class BuiltinConfig:
    """The rendered corpus: music21 scores played by virtual performers."""

    performers: tuple[str, ...]
    violin_pieces: int  # violin I parts of string quartets (monophonic)
    chorale_pieces: int  # Bach chorales, all four voices (polyphonic)
    max_seconds: float  # excerpt length per recording, at the score tempo
    sample_rate: int  # rate the "recordings" are rendered at (resample makes 16 kHz)


@dataclass(frozen=True)
class BachViolinConfig:
    url: str
    md5: str | None  # the archive's checksum, verified when set (null: not checked)
    collections: tuple[str, ...]  # empty = all collections
    max_movements: int | None


@dataclass(frozen=True)
class MaestroConfig:
    url: str
    sha256: str | None  # the archive's checksum, verified when set (null: not checked)
    splits: tuple[str, ...]
    max_recordings: int | None


DATA_SOURCES = ("builtin", "bach-violin", "maestro", "folder")  # pipeline.datasets.sources reads each


@dataclass(frozen=True)
class DataConfig:
    source: str  # builtin | bach-violin | maestro | folder
    root: str | None  # an already extracted copy of the dataset (skips the download); folder: your recordings
    download_dir: str
    seed: int
    builtin: BuiltinConfig
    bach_violin: BachViolinConfig
    maestro: MaestroConfig

    def __post_init__(self) -> None:
        if self.source not in DATA_SOURCES:
            raise PipelineError(f"data.source must be one of {', '.join(DATA_SOURCES)}, not {self.source!r}")


@dataclass(frozen=True)
class ResampleConfig:
    sample_rate: int


@dataclass(frozen=True)
class AlignConfig:
    """Score-to-audio synchronisation (DTW) settings."""

    soundfont: str  # reference rendering, deliberately not the corpus's
    program: int  # GM program of the reference rendering (40 violin; 0 piano for MAESTRO)
    feature_rate: int  # DTW frames per second at the finest level
    coarse_rate: int  # frames per second of the first, full DTW
    band_seconds: float  # half-width of the fine DTW's band around the coarse path
    onset_weight: float  # weight of the onset cost against the chroma cost
    diagonal_weight: float  # DTW step weight of a diagonal move (measured: 1 beats the symmetric 2)
    window_seconds: float  # STFT (Hann) window of the features
    chroma_gamma: float  # log compression log(1 + gamma x) of the chroma filterbank
    onset_gamma: float  # log compression of the onset bands (measured: 1e4 >> 1e2)
    onset_decay: float  # seconds an onset stays visible (decaying) in the onset features
    reference_reverb: int  # reverb send (CC91, 0-127) of the reference: recordings have a room, rests a tail
    repeat_gap: float  # the reference re-articulates a repeated pitch this many seconds before it
    trim_db: float  # leading/trailing audio quieter than this under the loud level is not aligned (0 keeps all)
    workers: int  # recordings aligned in parallel (processes)
    min_confidence: float  # recordings aligned with less confidence (0-1) are left out of training (mel stage)


@dataclass(frozen=True)
class MelConfig:
    """The vocoder's mel recipe (docs/data-formats.md); shared by every later stage, which also cuts its
    training and evaluation clips ``clip_frames`` long."""

    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float
    fmax: float
    clamp: float
    clip_frames: int  # frames per training / evaluation clip (the models' window; inference cuts the same)

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise PipelineError(f"params.mel.win_length ({self.win_length}) must be <= mel.n_fft ({self.n_fft})")
        if not self.fmin < self.fmax <= self.sample_rate / 2:
            raise PipelineError(
                f"params.mel needs fmin < fmax <= sample_rate / 2 (fmin {self.fmin:g}, fmax {self.fmax:g}, "
                f"sample_rate {self.sample_rate})"
            )


@dataclass(frozen=True)
class SplitConfig:
    """The one train / validation / test split of the pipeline (pipeline.datasets.split)."""

    by: str  # piece (every recording of a test piece held out) | recording
    test_share: float
    validation_share: float
    stratify: bool  # draw each share from monophonic and polyphonic material separately
    seed: int
    test_pieces: tuple[str, ...]  # pieces named test (override the hash; then no test is hash-drawn)
    validation_pieces: tuple[str, ...]  # pieces named validation (likewise)

    def __post_init__(self) -> None:
        if self.by not in ("piece", "recording"):
            raise PipelineError(f"split.by must be piece or recording, not {self.by!r}")
        both = sorted(set(self.test_pieces) & set(self.validation_pieces))
        if both:
            raise PipelineError(f"split.test_pieces and split.validation_pieces both name {', '.join(both)}")
        if not (
            0 <= self.test_share < 1 and 0 <= self.validation_share < 1 and self.test_share + self.validation_share < 1
        ):
            raise PipelineError("split.test_share and split.validation_share must be >= 0 and sum to less than 1")


@dataclass(frozen=True)
class TrainConfig:
    """The training loop's settings (pipeline.training.loop) of one training stage: the stage's own
    ``train:`` block (length, batch, cadence) merged with the top-level ``train:`` group that every
    training stage shares (see :data:`SHARED_TRAIN_GROUP`); a key lives in exactly one of the two."""

    max_steps: int
    batch_size: int
    validate_every: int
    checkpoint_every: int
    log_every: int
    grad_clip: float  # max gradient norm (0 = off)
    precision: str  # auto (bf16/fp16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    device: str  # auto | cpu | cuda | cuda:N
    seed: int
    num_workers: int


@dataclass(frozen=True)
class TransformerOptimizerConfig:
    """Adam with the transformer schedule (paper Table 6)."""

    lr: float  # multiplier of d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)
    betas: tuple[float, ...]
    eps: float
    warmup: int
    anneal_steps: tuple[int, ...]
    anneal_rate: float


@dataclass(frozen=True)
class TrainAlignmentConfig:
    model: dict  # AlignmentModel keyword arguments, typed by its constructor (pipeline.models.arguments)
    optimizer: TransformerOptimizerConfig
    train: TrainConfig


@dataclass(frozen=True)
class TrainSynthesisConfig:
    model: dict  # SynthesisModel keyword arguments, typed by its constructor (pipeline.models.arguments)
    optimizer: TransformerOptimizerConfig
    train: TrainConfig
    # the paper's ablations (section 4.4): name -> SynthesisModel keyword overrides; each is trained
    # like the full model by stage train_ablation@<name> (dvc.yaml foreach) into models/synthesis_<name>
    ablations: dict

    def ablation_model(self, name: str) -> dict:
        """Model keyword arguments of ablation ``name`` (the full model's, overridden)."""
        if name not in self.ablations:
            raise KeyError(
                f"unknown ablation {name!r} (params.yaml train_synthesis.ablations: {sorted(self.ablations)})"
            )
        return {**self.model, **(self.ablations[name] or {})}


VOCODERS = ("hifigan", "source_filter")  # the names pipeline.models.vocoders builds (a test keeps them in step)


@dataclass(frozen=True)
class GanConfig:
    """HiFi-GAN's training recipe (paper appendix B.3), shared by the vocoder stages and the HiFi-GAN
    piano-roll baseline: each adds what it feeds the generator."""

    generator: dict  # the generator's keyword arguments, typed by its constructor (pipeline.models.arguments)
    learning_rate: float
    betas: tuple[float, ...]
    lr_decay: float  # per epoch
    feature_matching_weight: float
    mel_weight: float
    discriminator_start: int  # steps of mel-loss-only generator warm-up before the GAN starts
    train: TrainConfig


@dataclass(frozen=True)
class TrainHifiganConfig(GanConfig):
    """A vocoder stage: log-mel (+ the notes' excitation) -> waveform."""

    vocoder: str  # pipeline.models.vocoders: hifigan (the paper's V2) | source_filter
    segment_samples: int
    segment_hop: int
    dc_weight: float  # weight of the output's DC error (pipeline.models.hifigan.dc_offset_loss); 0: the paper's recipe
    stft_weight: float  # weight of the multi-resolution STFT loss (pipeline.models.stft_loss); 0: the paper's recipe
    mel_augment: float  # share of training mels blurred and noised (pipeline.training.mel_augment); 0: the paper's
    # after training, measure the dB the output falls short of the validation recordings and store it with the
    # vocoder, which then adds it (HifiganTask.calibrate, pipeline.loudness); false: the paper's recipe
    level_calibration: bool

    def __post_init__(self) -> None:
        if self.vocoder not in VOCODERS:
            raise PipelineError(f"vocoder must be one of {', '.join(VOCODERS)}, not {self.vocoder!r}")


@dataclass(frozen=True)
class TrainHifiganBaselineConfig(GanConfig):
    """The HiFi-GAN piano-roll baseline: the vocoder's optimiser and losses, fed the score's rolls."""

    segment_frames: int  # training window (32 frames = 8192 samples, HiFi-GAN's segment)


@dataclass(frozen=True)
class TrainPerformanceNetConfig:
    model: dict  # PerformanceNet keyword arguments, typed by its constructor (pipeline.models.arguments)
    learning_rate: float
    betas: tuple[float, ...]
    segment_frames: int  # training window in frames (0 = whole 5-second clips, as the paper)
    griffin_lim_iterations: int
    train: TrainConfig


@dataclass(frozen=True)
class TranscriptionConfig:
    """The evaluation's note transcriber (basic-pitch's ONNX model on onnxruntime); the decoding
    settings of pipeline.evaluation.transcription.Decoding, tuned on training recordings only."""

    onset_threshold: float  # an onset-posterior peak this high starts a note
    frame_threshold: float  # a note lasts while its frame posterior stays this high (and the multi-pitch frames)
    min_note_seconds: float  # shorter notes are dropped
    melodia_trick: bool  # notes without an onset peak, from the leftover frame energy
    infer_onsets: bool
    # the network's lag behind the sound, subtracted from its notes: the candidates; the one with the best
    # note-onset F1 on ``latency_clips`` training clips scores every system (a bowed attack lags 22-51 ms)
    latencies: tuple[float, ...]
    latency_clips: int  # training clips (recordings' own audio) the latency is chosen on
    reonset_threshold: float | None  # stricter onset on a key already sounding (vibrato, bow swells)
    threads: int  # onnxruntime intra-op threads (1: deterministic, and the stage runs beside others)


REALISM_ENVELOPES = ("relative", "absolute")  # pipeline.evaluation.realism computes each
REALISM_DISTANCES = ("frechet", "diagonal")
REALISM_WEIGHTINGS = ("groups", "dims")
REALISM_GROUPS = ("envelope", "flatness", "flux", "level", "phase")  # frame feature groups, in column order
REALISM_COMPRESSIONS = ("log1p", "none")


@dataclass(frozen=True)
class RealismConfig:
    """The realism score (pipeline.evaluation.realism): each clip's frame features against those of the
    training split's recordings; chosen by measurement (docs/benchmarks.md, "Realism")."""

    envelope: str  # relative (to the clip's mean: a microphone's EQ is not the playing) | absolute
    distance: str  # frechet (Gaussian mean + covariance) | diagonal (per-feature mean + deviation)
    weighting: str  # groups (envelope, flatness, flux, level weigh the same) | dims (each feature dimension)
    n_fft: int  # analysis window in samples (high resolution: the fine structure between partials)
    hop_length: int
    bands: int  # log-spaced bands between fmin and fmax
    fmin: float
    fmax: float
    gate_db: float  # frames this far under the clip's loudest are left out (rests, noise floor)
    floor_db: float  # power floor under the clip's loudest frame, so log never meets a zero
    min_frames: int  # a clip with fewer frames above the gate cannot be scored (one-line error)
    groups: tuple[str, ...]  # the feature groups scored (REALISM_GROUPS), each weighing the same
    neighbours: int  # reference clips nearest in mean envelope a clip is compared with (0 = all, pooled)
    compress: str  # log1p (each group's distance as log(1 + d): one unseen-content clip cannot swamp a mean) | none
    phase_floor: float  # radians added before the log of a band's phase acceleration (a perfectly steady band)

    def __post_init__(self) -> None:
        for key, allowed in (
            ("envelope", REALISM_ENVELOPES),
            ("distance", REALISM_DISTANCES),
            ("weighting", REALISM_WEIGHTINGS),
            ("compress", REALISM_COMPRESSIONS),
        ):
            if getattr(self, key) not in allowed:
                raise PipelineError(
                    f"evaluate.realism.{key} must be one of {', '.join(allowed)}, not {getattr(self, key)!r}"
                )
        wrong = [g for g in self.groups if g not in REALISM_GROUPS]
        if wrong or not self.groups or len(set(self.groups)) != len(self.groups):
            raise PipelineError(
                f"evaluate.realism.groups must be distinct, non-empty names of {', '.join(REALISM_GROUPS)}, "
                f"not {list(self.groups)}"
            )
        if not self.fmin < self.fmax:
            raise PipelineError(f"evaluate.realism needs fmin < fmax (fmin {self.fmin:g}, fmax {self.fmax:g})")


@dataclass(frozen=True)
class EvaluateConfig:
    clips: int  # test clips scored (0 = every clip of the test recordings)
    report_clips: int  # clips in reports/index.html
    batch_size: int
    bootstrap_resamples: int  # clip-level bootstrap for the 95 % intervals
    confidence: float
    seed: int  # of the bootstrap
    workers: int  # systems scored in parallel (processes); the table is the same for any number
    transcription: TranscriptionConfig
    realism: RealismConfig


@dataclass(frozen=True)
class Params:
    data: DataConfig
    resample: ResampleConfig
    align: AlignConfig
    mel: MelConfig
    split: SplitConfig
    train_alignment: TrainAlignmentConfig
    train_synthesis: TrainSynthesisConfig
    train_hifigan: TrainHifiganConfig
    # the paper's HiFi-GAN V2 beside the default vocoder, for the evaluate table's paper row
    train_hifigan_v2: TrainHifiganConfig
    train_hifigan_baseline: TrainHifiganBaselineConfig
    train_performancenet: TrainPerformanceNetConfig
    evaluate: EvaluateConfig


# The range of every numeric setting, checked as params.yaml is read (a value of the right type but
# outside its range is a one-line error naming the key, not a crash 99 steps into training). Keys are
# a setting's name, or its dotted path under params where the same name means different things; a
# number not listed must be finite and >= 0. (low, high, low_open, high_open); None: unbounded.
Range = tuple[float | None, float | None, bool, bool]
AT_LEAST_ONE: Range = (1, None, False, False)
POSITIVE: Range = (0, None, True, False)
SHARE: Range = (0, 1, False, False)
BELOW_ONE: Range = (0, 1, False, True)
MIDI_VALUE: Range = (0, 127, False, False)
RANGES: dict[str, Range] = {
    **dict.fromkeys(
        (
            "sample_rate",
            "feature_rate",
            "coarse_rate",
            "n_fft",
            "hop_length",
            "win_length",
            "n_mels",
            "clip_frames",
            "max_steps",
            "batch_size",
            "validate_every",
            "checkpoint_every",
            "log_every",
            "workers",
            "warmup",
            "segment_samples",
            "segment_hop",
            "griffin_lim_iterations",
            "bootstrap_resamples",
            "threads",
            "max_movements",
            "max_recordings",
            "latency_clips",
            "params.train_hifigan_baseline.segment_frames",
            "bands",
            "min_frames",
        ),
        AT_LEAST_ONE,
    ),
    **dict.fromkeys(
        (
            "max_seconds",
            "band_seconds",
            "window_seconds",
            "lr",
            "learning_rate",
            "eps",
            "fmax",
            "clamp",
            "trim_db",
            "gate_db",
            "floor_db",
            "phase_floor",
        ),
        POSITIVE,
    ),
    **dict.fromkeys(
        ("onset_threshold", "frame_threshold", "reonset_threshold", "mel_augment", "anneal_rate", "min_confidence"),
        SHARE,
    ),
    **dict.fromkeys(("test_share", "validation_share", "betas"), BELOW_ONE),
    "lr_decay": (0, 1, True, False),
    "confidence": (0, 1, True, True),
    **dict.fromkeys(("program", "reference_reverb"), MIDI_VALUE),
}


def _describe(rule: Range) -> str:
    low, high, low_open, high_open = rule
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _check_range(where: str, value: float) -> None:
    """``value`` of setting ``where`` (``params.group.name``) against :data:`RANGES`."""
    if not np.isfinite(value):
        raise PipelineError(f"{where} must be a finite number, not {value}")
    rule = RANGES.get(where) or RANGES.get(where.rsplit(".", 1)[-1], (0, None, False, False))
    low, high, low_open, high_open = rule
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise PipelineError(f"{where} must be {_describe(rule)}, not {value:g}")


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
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
        _check_range(where, float(value))
        return float(value)
    if (tp in (int, str, bool) and not isinstance(value, tp)) or (tp is int and isinstance(value, bool)):
        raise PipelineError(f"{where} must be {tp.__name__}, not {value!r}")
    if tp is int:
        _check_range(where, value)
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
    # no defaults here: params.yaml is the only place a value lives, so a missing key is an error
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in data]  # type: ignore[arg-type]
    if missing:
        raise PipelineError(f"missing setting(s) {', '.join(f'{where}.{k}' for k in missing)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


SHARED_TRAIN_GROUP = "train"  # params.yaml's top-level group of loop settings every training stage shares


def _merge_shared_train(raw: dict[str, Any]) -> dict[str, Any]:
    """Every ``<stage>.train`` block completed by the top-level ``train`` group. A key set in both
    is an error: each value lives in one place."""
    raw = dict(raw)
    shared = raw.pop(SHARED_TRAIN_GROUP, None)
    if shared is None:
        return raw
    if not isinstance(shared, dict):
        raise PipelineError(f"params.{SHARED_TRAIN_GROUP} must be a mapping, not {shared!r}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(shared) - known)
    if unknown:
        raise PipelineError(f"unknown setting(s) {', '.join(f'params.{SHARED_TRAIN_GROUP}.{k}' for k in unknown)}")
    for group, block in raw.items():
        if isinstance(block, dict) and isinstance(block.get("train"), dict):
            both = sorted(set(shared) & set(block["train"]))
            if both:
                raise PipelineError(
                    f"{', '.join(f'params.{group}.train.{k}' for k in both)} also set in "
                    f"params.{SHARED_TRAIN_GROUP}: a setting lives in one place"
                )
            raw[group] = {**block, "train": {**shared, **block["train"]}}
    return raw


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise PipelineError("parameter file not found", path)
    try:
        # libyaml's loader where PyYAML has it: the same result, 10x faster (25 ms of every `performer render`)
        raw = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError as err:
        raise PipelineError(f"not valid YAML ({str(err).splitlines()[0]})", path) from err
    if not isinstance(raw, dict):
        raise PipelineError("must be a mapping of settings", path)
    return raw


def overlay_settings(base: dict[str, Any], overlay: dict[str, Any], where: str = "params") -> dict[str, Any]:
    """``base`` with ``overlay``'s settings put over it: mappings merged key by key, anything else
    (numbers, strings, lists) replaced whole. A mapping over a non-mapping (or the reverse) is an error,
    so an overlay cannot turn a group into a value by a slip of indentation."""
    merged = dict(base)
    for key, value in overlay.items():
        if key in merged and isinstance(merged[key], dict) != isinstance(value, dict):
            kind = "a group of settings" if isinstance(merged[key], dict) else "one value"
            raise PipelineError(f"{where}.{key} is {kind} in the base parameter file; the overlay must keep it so")
        merged[key] = overlay_settings(merged[key], value, f"{where}.{key}") if isinstance(value, dict) else value
    return merged


def load_params(path: str | Path = "params.yaml", *overlays: str | Path) -> Params:
    """Read ``params.yaml`` into typed config objects (every setting must be there: the dataclasses
    carry types and validation, never a competing default). ``overlays``: parameter files holding only
    what differs (a second job's, e.g. ``jobs/real-violin/params.yaml``), each put over the ones before
    it by :func:`overlay_settings`; the result is checked as a whole."""
    paths = [Path(path), *(Path(o) for o in overlays)]
    raw = _read_yaml(paths[0])
    try:
        for overlay in paths[1:]:
            try:
                raw = overlay_settings(raw, _read_yaml(overlay))
            except PipelineError as err:
                if err.path is not None:  # the file itself (missing, not YAML)
                    raise
                raise PipelineError(str(err), overlay) from err
        return from_dict(Params, _merge_shared_train(raw))
    except PipelineError as err:
        if err.path is not None:
            raise
        shown = paths[0] if len(paths) == 1 else Path(" + ".join(str(p) for p in paths))
        raise PipelineError(str(err), shown) from err


def params_chain(folder: str | Path) -> list[Path]:
    """The parameter files a pipeline folder runs with: ``folder/params.yaml``, or for a second job's
    folder inside the DVC project (``jobs/real-violin``: scripts/jobs.py) the project's params.yaml and
    then the job's overlay."""
    folder = Path(folder).resolve()
    for parent in folder.parents:
        if (parent / ".dvc").is_dir():
            if (parent / "params.yaml").is_file() and (folder / "dvc.yaml").is_file():
                return [parent / "params.yaml", folder / "params.yaml"]
            break
    return [folder / "params.yaml"]


def load_mel(path: str | Path = "params.yaml", *overlays: str | Path) -> MelConfig:
    """Only the ``mel`` group of a parameter file and its ``overlays`` (checked like :func:`load_params`):
    what a consumer of trained models needs, e.g. the registry storing the recipe with the models it
    registers."""
    path = Path(path)
    raw = _read_yaml(path)
    for overlay in overlays:
        try:
            raw = overlay_settings(raw, _read_yaml(Path(overlay)))
        except PipelineError as err:
            if err.path is not None:
                raise
            raise PipelineError(str(err), overlay) from err
    if "mel" not in raw:
        raise PipelineError("missing setting(s) params.mel", path)
    try:
        return from_dict(MelConfig, raw["mel"], "params.mel")
    except PipelineError as err:
        raise PipelineError(str(err), path) from err
