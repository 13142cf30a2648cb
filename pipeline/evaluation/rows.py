"""The rows of the evaluate table, declared: one :class:`Row` record per system, in table order.

A row says everything the evaluation needs of a system: its name in the table, how it is built (a
function of the params and the models folder returning what the scorer runs), the model folders it
reads (the evaluation hashes them into ``metrics/evaluate.json``; ``scripts/stage_deps.py --write``
makes each a dep of the evaluate stage in dvc.yaml), what it is compared with, and the corpora
(``data.source``) it applies to. The systems' rows give the audio metrics; the timing rows
give the timing columns, of their own row or, under the name of a system's row, of that row (the
alignment model's timing is the ``Deep Performer`` row's).

Adding a system to the table is one record in :func:`table_rows` (plus its build function, where
none of those below builds it). A synthesis model trained into ``models/synthesis_finetuned``, compared
with Deep Performer::

    Row("Fine-tuned", synthesis("synthesis_finetuned"), models=("synthesis_finetuned", "hifigan"),
        baseline_of=(DEEP_PERFORMER,)),

The systems themselves live in :mod:`pipeline.evaluation.systems` (the FluidSynth rows, the score
rendered with a timing system's timing, in :mod:`pipeline.evaluation.fluidsynth`), the timing systems in
:mod:`pipeline.evaluation.timing`; a new kind of system gets a ``def build(params, models) -> System``
here that calls it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pipeline.config import DATA_SOURCES, Params
from pipeline.evaluation import systems as sys_
from pipeline.evaluation.fluidsynth import fluidsynth_system, recording_timing
from pipeline.evaluation.systems import ModelFolder, System
from pipeline.evaluation.timing import TimingSystem, alignment_model_timing, constant_tempo
from pipeline.io import file_md5
from pipeline.models.alignment import model_class_tempo
from pipeline.rendering import Instrument

T = TypeVar("T")

DEEP_PERFORMER = "Deep Performer"
PAPER = "Deep Performer (HiFi-GAN V2)"  # the synthesis model with the paper's vocoder (models/hifigan_v2)
VOCODER = "Vocoder reconstruction"
PAPER_VOCODER = "Vocoder reconstruction (HiFi-GAN V2)"
FLOOR = "Griffin-Lim reconstruction"  # the recording's mel through Griffin-Lim: what a vocoder must beat
CEILING = "Recording"  # every audio metric on the recording itself: the best any system can score
# the score rendered by the project's FluidSynth (pipeline.evaluation.fluidsynth), timed three ways
FLUIDSYNTH_TEMPO = "FluidSynth (constant tempo)"  # at the tempo the alignment model is told: what users get
FLUIDSYNTH_MODEL = "FluidSynth (alignment-model timing)"  # the alignment model's timing, FluidSynth's sound
FLUIDSYNTH_ALIGNED = "FluidSynth (recording's timing)"  # the timing every synthesis row gets: the sound alone
CONSTANT_TEMPO = "Constant tempo"
EXACT_TEMPO = "Constant tempo (exact tempo)"
ABLATION_TITLES = {
    "no_notewise_pe": "w/o note-wise PE",
    "no_performer_embedding": "w/o performer embedding",
    "no_encoder": "w/o encoder",
    "no_harmonic_prior": "w/o harmonic prior",  # the paper's synthesis model (the prior is this project's)
}


@dataclass(frozen=True)
class Row(Generic[T]):
    """One row of the table: a system (``T`` = :data:`~pipeline.evaluation.systems.System`) or a timing
    system (``T`` = :data:`~pipeline.evaluation.timing.TimingSystem`)."""

    name: str  # as the table shows it (metrics/evaluate.json keys it by its slug)
    build: Callable[[Params, ModelFolder], T]  # what the scorer runs, from the params and the models folder
    models: tuple[str, ...] = ()  # the folders under the models folder that ``build`` loads
    # rows this one is a baseline of: each gets a paired difference "that row minus this one"
    baseline_of: tuple[str, ...] = ()
    # rows this one is compared against: a paired difference "this row minus that one" for each, in this order
    compare_with: tuple[str, ...] = ()
    sources: tuple[str, ...] | None = None  # the data.source values it applies to (None: every corpus)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sources or ()) - set(DATA_SOURCES))
        if unknown:
            raise ValueError(f"row {self.name!r}: unknown data source(s) {unknown} (one of {DATA_SOURCES})")

    def applies_to(self, source: str) -> bool:
        return self.sources is None or source in self.sources


@dataclass(frozen=True)
class TableRows:
    """The table's rows in table order: the systems', then the timing systems'."""

    systems: tuple[Row[System], ...]
    timing: tuple[Row[TimingSystem], ...]

    def __post_init__(self) -> None:
        for kind in (self.systems, self.timing):
            names = [r.name for r in kind]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"rows declared twice: {repeated}")
        known = set(self.names)
        for row in self.rows:
            unknown = [n for n in (*row.baseline_of, *row.compare_with) if n not in known]
            if unknown:
                raise ValueError(f"row {row.name!r} is compared with rows the table does not have: {unknown}")

    @property
    def rows(self) -> tuple[Row, ...]:
        return (*self.systems, *self.timing)

    @property
    def names(self) -> list[str]:
        """The table's rows: every system, then each timing system without a system row of its name."""
        systems = [r.name for r in self.systems]
        return systems + [r.name for r in self.timing if r.name not in systems]

    def comparisons(self) -> list[tuple[str, str]]:
        """The paired comparisons (system, baseline), grouped by system in table order: first the rows the
        system's own records compare it with, then the rows declared its baselines, in table order."""
        pairs: list[tuple[str, str]] = []
        for name in self.names:
            pairs += [(name, other) for row in self.rows if row.name == name for other in row.compare_with]
            pairs += [(name, row.name) for row in self.rows if name in row.baseline_of]
        return list(dict.fromkeys(pairs))

    def model_folders(self) -> list[str]:
        """The folders under the models folder that the rows read, each once, in table order."""
        return list(dict.fromkeys(folder for row in self.rows for folder in row.models))

    def for_source(self, source: str) -> TableRows:
        """The rows that apply to corpus ``source``, compared only with each other."""

        def kept(rows: tuple[Row[T], ...]) -> tuple[Row[T], ...]:
            return tuple(r for r in rows if r.applies_to(source))

        present = {r.name for r in self.rows if r.applies_to(source)}

        def pruned(rows: tuple[Row[T], ...]) -> tuple[Row[T], ...]:
            return tuple(
                dataclasses.replace(
                    r,
                    baseline_of=tuple(n for n in r.baseline_of if n in present),
                    compare_with=tuple(n for n in r.compare_with if n in present),
                )
                for r in kept(rows)
            )

        return TableRows(pruned(self.systems), pruned(self.timing))


def table_rows(params: Params) -> TableRows:
    """The evaluate table as declared: every row that may appear, in table order (one ablation row per
    ``train_synthesis.ablations``); :meth:`TableRows.for_source` keeps those of a corpus."""
    return TableRows(
        systems=(
            Row(DEEP_PERFORMER, synthesis("synthesis"), models=("synthesis", "hifigan")),
            *(
                Row(
                    ABLATION_TITLES.get(name, name),
                    synthesis(f"synthesis_{name}"),
                    models=(f"synthesis_{name}", "hifigan"),
                    baseline_of=(DEEP_PERFORMER,),
                )
                for name in params.train_synthesis.ablations
            ),
            # the paper's system as published: the same synthesis model through the paper's HiFi-GAN V2
            Row(
                PAPER,
                synthesis("synthesis", vocoder="hifigan_v2"),
                models=("synthesis", "hifigan_v2"),
                baseline_of=(DEEP_PERFORMER,),
            ),
            Row("HiFi-GAN baseline", hifigan_baseline, models=("hifigan_baseline",), baseline_of=(DEEP_PERFORMER,)),
            Row("PerformanceNet", performancenet, models=("performancenet",), baseline_of=(DEEP_PERFORMER,)),
            # what users pick today; on the built-in corpus (itself FluidSynth renders, another soundfont) a strong row
            Row(FLUIDSYNTH_TEMPO, fluidsynth(class_tempo), models=("alignment",), baseline_of=(DEEP_PERFORMER,)),
            Row(FLUIDSYNTH_MODEL, fluidsynth(alignment_timing), models=("alignment",), baseline_of=(DEEP_PERFORMER,)),
            Row(FLUIDSYNTH_ALIGNED, fluidsynth(recorded_timing), baseline_of=(DEEP_PERFORMER,)),
            # the vocoder against its floor and against the paper's vocoder
            Row(VOCODER, reconstruction("hifigan"), models=("hifigan",), compare_with=(FLOOR, PAPER_VOCODER)),
            Row(PAPER_VOCODER, reconstruction("hifigan_v2"), models=("hifigan_v2",)),
            Row(FLOOR, griffin_lim),
            Row(CEILING, recording),
        ),
        timing=(
            Row(DEEP_PERFORMER, alignment_timing, models=("alignment",)),
            Row(CONSTANT_TEMPO, class_tempo, models=("alignment",), baseline_of=(DEEP_PERFORMER,)),
            Row(EXACT_TEMPO, exact_tempo),
        ),
    )


def evaluated_models(rows: TableRows, models: Path) -> dict[str, str]:
    """``{folder: md5 of <models>/<folder>/model.pt}`` for every model file the rows load, hashed before
    they are loaded. The metrics record them (``models``): `performer models register` refuses other models."""
    return {f: file_md5(models / f / "model.pt") for f in rows.model_folders() if (models / f / "model.pt").is_file()}


# ---------------------------------------------------------------------------------------------- build functions


def synthesis(folder: str, vocoder: str = "hifigan") -> Callable[[Params, ModelFolder], System]:
    """The synthesis model in ``models/<folder>`` played through the vocoder in ``models/<vocoder>``."""

    def build(params: Params, models: ModelFolder) -> System:
        return sys_.synthesis_system(models.root, folder, models.vocoder(vocoder), folder, params.mel.sample_rate)

    return build


def hifigan_baseline(params: Params, models: ModelFolder) -> System:
    return sys_.pianoroll_hifigan_system(models.root, params.mel)


def performancenet(params: Params, models: ModelFolder) -> System:
    return sys_.performancenet_system(models.root, params.mel, params.train_performancenet.griffin_lim_iterations)


def fluidsynth(timing: Callable[[Params, ModelFolder], TimingSystem]) -> Callable[[Params, ModelFolder], System]:
    """The clip's notes timed by the timing system ``timing`` builds, rendered by FluidSynth with the
    alignment reference's soundfont, program and reverb (params ``align``)."""

    def build(params: Params, models: ModelFolder) -> System:
        a = params.align
        instrument = Instrument(a.soundfont, program=a.program, reverb_send=a.reference_reverb)
        return fluidsynth_system(timing(params, models), instrument, params.mel)

    return build


def recorded_timing(params: Params, models: ModelFolder) -> TimingSystem:
    """The recording's own aligned timing (what the synthesis systems are given)."""
    return recording_timing


def reconstruction(vocoder: str) -> Callable[[Params, ModelFolder], System]:
    """The recording's own mel through the vocoder in ``models/<vocoder>``."""

    def build(params: Params, models: ModelFolder) -> System:
        return sys_.vocoder_reconstruction(models.vocoder(vocoder), params.mel.sample_rate)

    return build


def griffin_lim(params: Params, models: ModelFolder) -> System:
    return sys_.griffin_lim_reconstruction(params.mel, params.train_performancenet.griffin_lim_iterations)


def recording(params: Params, models: ModelFolder) -> System:
    return sys_.recording(params.mel.hop_length)


def _frame_rate(params: Params) -> float:
    return 1.0 / (params.mel.hop_length / params.mel.sample_rate)


def alignment_timing(params: Params, models: ModelFolder) -> TimingSystem:
    """The alignment model's onsets and durations, as rendering plays them."""
    model = models.alignment()
    return lambda batch: alignment_model_timing(model, batch)


def class_tempo(params: Params, models: ModelFolder) -> TimingSystem:
    """The score at the centre of the recording's tempo class: the tempo the alignment model is told."""
    model, frame_rate = models.alignment(), _frame_rate(params)
    return lambda batch: constant_tempo(batch, frame_rate, qpm=model_class_tempo(model, batch["tempo_qpm"]))


def exact_tempo(params: Params, models: ModelFolder) -> TimingSystem:
    """The score at the recording's exact average tempo (an oracle)."""
    frame_rate = _frame_rate(params)
    return lambda batch: constant_tempo(batch, frame_rate)
