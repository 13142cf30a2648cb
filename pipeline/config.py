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
    violin_pieces: int = 7  # violin I parts of string quartets (monophonic)
    chorale_pieces: int = 5  # Bach chorales, all four voices (polyphonic)
    max_seconds: float = 20.0  # excerpt length per recording, at the score tempo
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
    onset_weight: float = 1.0  # weight of the onset cost against the chroma cost
    diagonal_weight: float = 1.0  # DTW step weight of a diagonal move (measured: 1 beats the symmetric 2)
    window_seconds: float = 0.128  # STFT (Hann) window of the features
    chroma_gamma: float = 1000.0  # log compression log(1 + gamma x) of the chroma filterbank
    onset_gamma: float = 10000.0  # log compression of the onset bands (measured: 1e4 >> 1e2)
    onset_decay: float = 0.05  # seconds an onset stays visible (decaying) in the onset features
    reference_reverb: int = 30  # reverb send (CC91, 0-127) of the reference: recordings have a room, rests a tail
    repeat_gap: float = 0.1  # the reference re-articulates a repeated pitch this many seconds before it
    trim_db: float = 40.0  # leading/trailing audio quieter than this under the loud level is not aligned (0 keeps all)
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
class SplitConfig:
    """The one train / validation / test split of the pipeline (pipeline.datasets.split)."""

    by: str = "piece"  # piece (every recording of a test piece held out) | recording
    test_share: float = 0.25
    validation_share: float = 0.15
    stratify: bool = True  # draw each share from monophonic and polyphonic material separately
    seed: int = 0

    def __post_init__(self) -> None:
        if self.by not in ("piece", "recording"):
            raise PipelineError(f"split.by must be piece or recording, not {self.by!r}")
        if not (0 <= self.test_share < 1 and 0 <= self.validation_share < 1
                and self.test_share + self.validation_share < 1):
            raise PipelineError("split.test_share and split.validation_share must be >= 0 and sum to less than 1")


@dataclass(frozen=True)
class TrainConfig:
    """The training loop's settings (pipeline.training.loop), one block per training stage."""

    max_steps: int = 1000
    batch_size: int = 16
    validate_every: int = 200
    checkpoint_every: int = 200
    log_every: int = 10
    grad_clip: float = 1.0  # max gradient norm (0 = off)
    precision: str = "auto"  # auto (bf16/fp16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    num_workers: int = 0


@dataclass(frozen=True)
class TransformerOptimizerConfig:
    """Adam with the transformer schedule (paper Table 6)."""

    lr: float = 1.0  # multiplier of d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)
    betas: tuple[float, ...] = (0.9, 0.98)
    eps: float = 1e-9
    warmup: int = 4000
    anneal_steps: tuple[int, ...] = ()
    anneal_rate: float = 0.5


@dataclass(frozen=True)
class TrainAlignmentConfig:
    model: dict = field(default_factory=dict)  # AlignmentModel keyword arguments (defaults: Table 4)
    optimizer: TransformerOptimizerConfig = field(
        default_factory=lambda: TransformerOptimizerConfig(warmup=1000, anneal_steps=(10000, 20000, 50000))
    )
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class TrainSynthesisConfig:
    model: dict = field(default_factory=dict)  # SynthesisModel keyword arguments (defaults: Table 5)
    optimizer: TransformerOptimizerConfig = field(default_factory=TransformerOptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # the paper's ablations (section 4.4): name -> SynthesisModel keyword overrides; each is trained
    # like the full model by stage train_ablation@<name> (dvc.yaml foreach) into models/synthesis_<name>
    ablations: dict = field(default_factory=dict)

    def ablation_model(self, name: str) -> dict:
        """Model keyword arguments of ablation ``name`` (the full model's, overridden)."""
        if name not in self.ablations:
            raise KeyError(f"unknown ablation {name!r} (params.yaml train_synthesis.ablations: {sorted(self.ablations)})")
        return {**self.model, **(self.ablations[name] or {})}


VOCODERS = ("hifigan", "source_filter")  # the names pipeline.models.vocoders builds (a test keeps them in step)


@dataclass(frozen=True)
class TrainHifiganConfig:
    vocoder: str = "hifigan"  # pipeline.models.vocoders: hifigan (the paper's V2) | source_filter
    generator: dict = field(default_factory=dict)  # the vocoder's keyword arguments (defaults: HiFi-GAN V2)
    learning_rate: float = 2e-4
    betas: tuple[float, ...] = (0.8, 0.99)
    lr_decay: float = 0.999  # per epoch
    segment_samples: int = 8192
    segment_hop: int = 4096
    feature_matching_weight: float = 2.0
    mel_weight: float = 45.0
    discriminator_start: int = 0  # steps of mel-loss-only generator warm-up before the GAN starts
    dc_weight: float = 0.0  # weight of the output's DC error (pipeline.models.hifigan.dc_offset_loss); 0: the paper's recipe
    stft_weight: float = 0.0  # weight of the multi-resolution STFT loss (pipeline.models.stft_loss); 0: the paper's recipe
    mel_augment: float = 0.0  # share of training mels blurred and noised (pipeline.training.mel_augment); 0: the paper's
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.vocoder not in VOCODERS:
            raise PipelineError(f"vocoder must be one of {', '.join(VOCODERS)}, not {self.vocoder!r}")


@dataclass(frozen=True)
class TrainHifiganBaselineConfig:
    """The HiFi-GAN piano-roll baseline: the vocoder's optimiser and losses, fed the score's rolls."""

    generator: dict = field(default_factory=dict)  # Generator keyword arguments (defaults: HiFi-GAN V2)
    learning_rate: float = 2e-4
    betas: tuple[float, ...] = (0.8, 0.99)
    lr_decay: float = 0.999  # per epoch
    segment_frames: int = 32  # training window (32 frames = 8192 samples, HiFi-GAN's segment)
    feature_matching_weight: float = 2.0
    mel_weight: float = 45.0
    discriminator_start: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class TrainPerformanceNetConfig:
    model: dict = field(default_factory=dict)  # PerformanceNet keyword arguments (defaults: the paper's widths)
    learning_rate: float = 5e-4
    betas: tuple[float, ...] = (0.9, 0.999)
    segment_frames: int = 0  # training window in frames (0 = whole 5-second clips, as the paper)
    griffin_lim_iterations: int = 32
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class TranscriptionConfig:
    """The evaluation's note transcriber (basic-pitch's ONNX model on onnxruntime); the decoding
    settings of pipeline.evaluation.transcription.Decoding, tuned on training recordings only."""

    onset_threshold: float = 0.5  # an onset-posterior peak this high starts a note
    frame_threshold: float = 0.4  # a note lasts while its frame posterior stays this high (and the multi-pitch frames)
    min_note_seconds: float = 0.058  # shorter notes are dropped
    melodia_trick: bool = True  # notes without an onset peak, from the leftover frame energy
    infer_onsets: bool = False
    # the network's lag behind the sound, subtracted from its notes: each system is scored at the one of
    # these that fits its notes best (a hard attack lags ~0 ms, a bowed one 22-51 ms)
    latencies: tuple[float, ...] = (0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06)
    reonset_threshold: float | None = 0.8  # stricter onset on a key already sounding (vibrato, bow swells)
    threads: int = 1  # onnxruntime intra-op threads (1: deterministic, and the stage runs beside others)


@dataclass(frozen=True)
class EvaluateConfig:
    clips: int = 0  # test clips scored (0 = every clip of the test recordings)
    report_clips: int = 3  # clips in reports/index.html
    batch_size: int = 8
    bootstrap_resamples: int = 1000  # clip-level bootstrap for the 95 % intervals
    confidence: float = 0.95
    seed: int = 0  # of the bootstrap
    transcription: TranscriptionConfig = field(default_factory=TranscriptionConfig)


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    resample: ResampleConfig = field(default_factory=ResampleConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    mel: MelConfig = field(default_factory=MelConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    train_alignment: TrainAlignmentConfig = field(default_factory=TrainAlignmentConfig)
    train_synthesis: TrainSynthesisConfig = field(default_factory=TrainSynthesisConfig)
    train_hifigan: TrainHifiganConfig = field(default_factory=TrainHifiganConfig)
    # the paper's HiFi-GAN V2 beside the default vocoder, for the evaluate table's paper row
    train_hifigan_v2: TrainHifiganConfig = field(default_factory=TrainHifiganConfig)
    train_hifigan_baseline: TrainHifiganBaselineConfig = field(default_factory=TrainHifiganBaselineConfig)
    train_performancenet: TrainPerformanceNetConfig = field(default_factory=TrainPerformanceNetConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


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
