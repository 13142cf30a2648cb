"""Export a Deep Performer's three models to ONNX graphs that `performer render` runs on onnxruntime,
without importing torch (:mod:`pipeline.inference.runtime.onnx_models`).

Importing torch costs 1.5-2 s, more than rendering a minute of music (docs/benchmarks.md, "Render
command"); the graphs load in a fraction of that. Each graph takes exactly the arrays rendering
already builds (:func:`pipeline.datasets.batching.collate_arrays`) and runs the model's own forward,
traced, so there is one definition of every network:

    timing.onnx    pitch, velocity, score_onset, score_duration, note_mask, tempo_qpm,
                   performer_weights                -> timing (B, N, 2), class_tempo (B,)
    mel.onnx       the same notes + onset_frame, offset_frame, frame_mask -> mel (B, n_mels, T)
    vocoder.onnx   source_filter: mel (B, n_mels, T), harmonic_magnitude (B, bins, T)
                                                   -> magnitude, harmonic_gain (B, bins, T)
                   hifigan: mel[, source]           -> audio (B, 1, T * hop)

The source-filter vocoder's STFT and inverse STFT are complex-valued and not ONNX operators; they are
framing and FFTs, which numpy does beside its network (``SourceFilterVocoder.filters``, the part with
weights). Single performers are rendered as one-hot blends, which give exactly the plain lookup
(:func:`pipeline.models.performer_blend.performer_vectors`).

``render.json`` beside the graphs carries what rendering needs besides them (hparams, mel recipe,
level offsets) and the SHA-256 of every ``model.pt`` they were exported from, so a model trained
again is never rendered through a stale graph (:func:`pipeline.inference.runtime.onnx_models.onnx_status`).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.errors import PipelineError
from pipeline.inference.models import MODEL_NAMES, PerformerModels
from pipeline.io import atomic_dir, file_sha256
from pipeline.models.alignment import alignment_inputs, model_class_tempo
from pipeline.models.source_filter import SourceFilterVocoder
from pipeline.models.synthesis import synthesis_inputs
from pipeline.models.vocoders import vocoder_kind

OPSET = 17
FORMAT = 2  # render.json's layout; onnx_models refuses others
GRAPHS = {"alignment": "timing.onnx", "synthesis": "mel.onnx", "hifigan": "vocoder.onnx"}
TIMING_INPUTS = ("pitch", "velocity", "score_onset", "score_duration", "note_mask", "tempo_qpm", "performer_weights")
MEL_INPUTS = TIMING_INPUTS[:5] + ("onset_frame", "offset_frame", "frame_mask", "performer_weights")


class _BatchGraph(nn.Module):
    """``model(**inputs(model, batch))`` of a batch given as the tensors named ``keys``, in that order (what
    the graph takes); with ``class_tempo``, also the alignment model's tempo class centres."""

    def __init__(self, model: Any, keys: tuple[str, ...], inputs: Any, class_tempo: bool = False) -> None:
        super().__init__()
        self.model, self.keys, self.inputs, self.class_tempo = model, keys, inputs, class_tempo

    def forward(self, *tensors: torch.Tensor) -> Any:
        batch = dict(zip(self.keys, tensors))
        batch["performer"] = torch.zeros_like(batch["pitch"][:, 0])  # unused: the weights choose the performer
        out = self.model(**self.inputs(self.model, batch))
        return (out, model_class_tempo(self.model, batch["tempo_qpm"])) if self.class_tempo else out


class _FilterGraph(nn.Module):
    def __init__(self, vocoder: SourceFilterVocoder) -> None:
        super().__init__()
        self.vocoder = vocoder

    def forward(self, mel, harmonic_magnitude):
        return self.vocoder.filters(mel, harmonic_magnitude)


def _example_notes(n_notes: int, n_frames: int, n_performers: int) -> dict[str, torch.Tensor]:
    """A small batch (B = 2) of well-formed notes to trace with (the values do not shape the graph)."""
    onset = torch.arange(n_notes).repeat(2, 1) * (n_frames // n_notes)
    return dict(
        pitch=torch.full((2, n_notes), 60, dtype=torch.long),
        velocity=torch.full((2, n_notes), 80, dtype=torch.long),
        score_onset=onset * 10,
        score_duration=torch.full((2, n_notes), 10, dtype=torch.long),
        note_mask=torch.ones(2, n_notes, dtype=torch.bool),
        onset_frame=onset,
        offset_frame=onset + 2,
        frame_mask=torch.ones(2, n_frames, dtype=torch.bool),
        tempo_qpm=torch.full((2,), 100.0),
        performer_weights=torch.full((2, n_performers), 1.0 / n_performers),
    )


def _export(
    module: nn.Module, inputs: dict[str, torch.Tensor], outputs: list[str], axes: dict[str, dict[int, str]], path: Path
) -> None:
    with warnings.catch_warnings():  # the tracer's notes on shape checks that hold for every input we feed
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            tuple(inputs.values()),
            str(path),
            input_names=list(inputs),
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )


def _note_axes(keys: tuple[str, ...]) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    for key in keys:
        if key == "frame_mask":
            axes[key] = {0: "batch", 1: "frames"}
        elif key in ("tempo_qpm", "performer_weights"):
            axes[key] = {0: "batch"}
        else:
            axes[key] = {0: "batch", 1: "notes"}
    return axes


def _register_cummax() -> None:
    """``torch.cummax`` (the note encoding's last-valid-note index) has no ONNX symbolic: an ``(N, N)``
    lower-triangular mask and a max, exact for the (B, N) integer indices it is used on."""
    from torch.onnx import register_custom_op_symbolic

    def cummax(g: Any, x: Any, dim: Any) -> tuple[Any, Any]:
        def const(value: Any) -> Any:
            return g.op("Constant", value_t=torch.tensor(value))

        n = g.op("Gather", g.op("Shape", x), const(1), axis_i=0)
        index = g.op("Range", const(0), n, const(1))
        later = g.op("Greater", g.op("Unsqueeze", index, const([0])), g.op("Unsqueeze", index, const([1])))
        masked = g.op("Where", later, const(-(2**62)), g.op("Unsqueeze", x, const([1])))  # (B, N, N): j > i masked
        values = g.op("ReduceMax", masked, axes_i=[2], keepdims_i=0)
        return values, g.op("ArgMax", masked, axis_i=2, keepdims_i=0, select_last_index_i=1)

    register_custom_op_symbolic("aten::cummax", cummax, OPSET)


def render_metadata(models: PerformerModels, hashes: dict[str, str]) -> dict[str, Any]:
    """What rendering needs besides the graphs: render.json's content."""
    vocoder = models.vocoder
    return {
        "format": FORMAT,
        "mel": asdict(models.mel),
        "alignment": {"hparams": models.alignment.config()},
        "synthesis": {"hparams": models.synthesis.config(), "calibration": models.synthesis.calibration.to_dict()},
        "hifigan": {
            "kind": vocoder_kind(vocoder),
            "hparams": vocoder.config(),
            "hop_length": int(vocoder.hop_length),
            "excitation": bool(vocoder.excitation),
            "calibration": vocoder.calibration.to_dict(),
        },
        "sha256": hashes,
    }


def export_onnx(models_dir: Path, out: Path, models: PerformerModels) -> None:
    """Write ``out``/{timing,mel,vocoder}.onnx and render.json for the models loaded from ``models_dir``
    (the three ``<name>/model.pt``), all or nothing."""
    vocoder = models.vocoder
    if isinstance(vocoder, SourceFilterVocoder) and vocoder.phase_iterations:
        raise PipelineError(
            "the ONNX export does not run phase_iterations > 0: render with --backend torch", models_dir
        )
    hashes = {name: file_sha256(models_dir / name / "model.pt") for name in MODEL_NAMES}
    models.to("cpu")
    _register_cummax()
    n_performers = int(models.synthesis.hparams["n_performers"])
    notes = _example_notes(8, 64, n_performers)
    with atomic_dir(out) as tmp:
        timing_inputs = {k: notes[k] for k in TIMING_INPUTS}
        _export(
            _BatchGraph(models.alignment, TIMING_INPUTS, alignment_inputs, class_tempo=True),
            timing_inputs,
            ["timing", "class_tempo"],
            {**_note_axes(TIMING_INPUTS), "timing": {0: "batch", 1: "notes"}, "class_tempo": {0: "batch"}},
            tmp / GRAPHS["alignment"],
        )
        _export(
            _BatchGraph(models.synthesis, MEL_INPUTS, synthesis_inputs),
            {k: notes[k] for k in MEL_INPUTS},
            ["mel"],
            {**_note_axes(MEL_INPUTS), "mel": {0: "batch", 2: "frames"}},
            tmp / GRAPHS["synthesis"],
        )
        mel = torch.full((1, vocoder.config()["in_channels"], 40), -5.0)
        frames = {0: "batch", 2: "frames"}
        if isinstance(vocoder, SourceFilterVocoder):
            magnitude = torch.ones(1, vocoder.bins, 40)
            _export(
                _FilterGraph(vocoder),
                {"mel": mel, "harmonic_magnitude": magnitude},
                ["magnitude", "harmonic_gain"],
                {"mel": frames, "harmonic_magnitude": frames, "magnitude": frames, "harmonic_gain": frames},
                tmp / GRAPHS["hifigan"],
            )
        else:
            inputs = {"mel": mel}
            axes = {"mel": frames, "audio": frames}
            if vocoder.excitation:
                inputs["source"] = torch.zeros(1, 40 * vocoder.hop_length)
                axes["source"] = {0: "batch", 1: "samples"}
            _export(vocoder, inputs, ["audio"], axes, tmp / GRAPHS["hifigan"])
        meta = render_metadata(models, hashes)
        (tmp / "render.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
