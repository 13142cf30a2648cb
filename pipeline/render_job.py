"""`performer render`'s job: which backend renders (:func:`choose_backend`), the three models loaded
once (:func:`load_bundle`) and each score rendered into its files (:func:`render_files`, all of a
score's files or none of them).

Importing this module costs nothing (numpy, onnxruntime and torch are imported by the functions that
need them): the command checks its outputs before any of them is imported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.config import MelConfig
    from pipeline.inference.runtime.bundle import ModelBundle
    from pipeline.inference.runtime.render import Rendering
    from pipeline.scores import NoteTable

BACKENDS = ("auto", "onnx", "torch")
RENDER_THREADS = 1  # measured: docs/benchmarks.md, "Render command"


@dataclass(frozen=True)
class RenderRequest:
    """One score to render and the files to write for it: every option that does not choose the models."""

    score: str
    output: str
    performer: str | None = None
    tempo: float | None = None
    loudness: str = "calibrated"
    mel_plot: str | None = None
    timing: str | None = None
    midi: str | None = None


@dataclass(frozen=True)
class RenderDone:
    """What the command says when a score's files are written."""

    notes: int
    seconds: float  # of audio
    performer: str


def check_loudness(loudness: str) -> None:
    from pipeline.loudness import LOUDNESS

    if loudness not in LOUDNESS:
        raise PipelineError(f"--loudness must be one of {', '.join(LOUDNESS)}, not {loudness!r}")


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def is_models_folder(models: str) -> bool:
    """``--models`` names a folder of the training stages' outputs (not MLflow model URIs)."""
    return not models.startswith("models:/") and "," not in models and Path(models).is_dir()


def choose_backend(
    backend: str, models: str, device: str, params: Path, say: Callable[[str], None] = _to_stderr
) -> Path | None:
    """The folder of the ONNX export to render with (None: render with torch); imports no torch.

    ``auto`` takes the export of a models folder when it is current (exported from the ``model.pt``
    files there now, with the mel recipe of ``params``) and no GPU was asked for, and says through
    ``say`` why not when it is there but cannot be used; ``onnx`` insists on it."""
    if backend not in BACKENDS:
        raise PipelineError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "torch":
        return None
    if not is_models_folder(models):
        if backend == "onnx":
            raise PipelineError("--backend onnx renders a models folder's export, not registered models", models)
        return None
    if device == "cuda":
        if backend == "onnx":
            raise PipelineError("--backend onnx runs on the CPU: leave --device out or use --backend torch")
        return None
    from pipeline.inference.runtime.onnx_models import onnx_status

    folder = Path(models) / "onnx"
    why = onnx_status(Path(models), folder, _params_mel(params))
    if why is None:
        return folder
    if backend == "onnx":
        raise PipelineError(f"cannot render with the ONNX export: {why}")
    if (folder / "render.json").exists():
        say(f"rendering with torch: {why}")
    return None


def _params_mel(params: Path) -> MelConfig | None:
    from pipeline.config import load_mel

    return load_mel(params) if params.is_file() else None  # a composite registered model carries its own


def load_bundle(models: str, device: str, params: Path, threads: int, onnx_folder: Path | None) -> ModelBundle:
    """The three models: the ONNX export in ``onnx_folder`` (from :func:`choose_backend`), else the torch
    models of ``models`` (a folder or MLflow URIs, :func:`pipeline.registry.loading.load_models`)."""
    if onnx_folder is not None:
        from pipeline.inference.runtime.onnx_models import OnnxModels

        return OnnxModels(onnx_folder, threads=threads)
    import torch

    from pipeline.device import select_device
    from pipeline.registry.loading import load_models

    torch.set_num_threads(threads)
    return load_models(models, _params_mel(params), select_device(device))


def read_request_score(request: RenderRequest) -> NoteTable:
    from pipeline.scores import read_score

    notes = read_score(request.score)
    if len(notes) == 0:
        raise PipelineError("the score has no notes", request.score)
    return notes


def render_files(bundle: ModelBundle, request: RenderRequest, notes: NoteTable) -> RenderDone:
    """Render ``notes`` (the request's score) and write the request's files, all of them or none."""
    from pipeline.audio import write_audio
    from pipeline.inference.runtime.render import render_score
    from pipeline.outputs import all_or_nothing

    performer = request.performer
    if performer is None:
        performer = bundle.performers[0] if bundle.performers else "0"
    result = render_score(bundle, notes, performer, request.tempo, loudness=request.loudness)
    frame = result.hop_length / result.sample_rate
    onset, offset = result.onset_frame * frame, result.offset_frame * frame
    with all_or_nothing([request.output, request.mel_plot, request.timing, request.midi]):
        write_audio(request.output, result.audio, result.sample_rate)
        if request.mel_plot is not None:
            _plot_rendering(Path(request.mel_plot), result, notes, Path(request.score).name, bundle.mel)
        if request.timing is not None:
            from pipeline.scores import write_note_timing

            write_note_timing(request.timing, notes, onset, offset)
        if request.midi is not None:
            from pipeline.scores import write_performance_midi

            write_performance_midi(
                request.midi,
                notes.pitch,
                onset,
                offset,
                notes.velocity,
                performer=result.performer,
                program=performer_program(result.performer),
                title=Path(request.score).stem,
            )
    return RenderDone(notes=len(notes), seconds=result.seconds, performer=result.performer)


VIOLIN_PROGRAM = 40  # General MIDI: the instrument of the real corpus (the Bach Violin Dataset)


def performer_program(performer: str) -> int:
    """The General MIDI program a performance MIDI names: a virtual performer's own instrument
    (pipeline.performers), the first of a blend's; a violin for anyone else (a real violinist)."""
    from pipeline.performers import PERFORMERS

    first = performer.split(",")[0].split(":")[0]
    return PERFORMERS[first].instrument.program if first in PERFORMERS else VIOLIN_PROGRAM


def _plot_rendering(path: Path, result: Rendering, notes: NoteTable, title: str, mel: MelConfig) -> None:
    from pipeline.plots import plot_mel_with_notes

    timed = {"pitch": notes.pitch, "onset_frame": result.onset_frame, "offset_frame": result.offset_frame}
    plot_mel_with_notes(path, result.mel, timed, mel, title=title)
