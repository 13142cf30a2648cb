"""A Deep Performer's three models as onnxruntime graphs (:mod:`pipeline.inference.onnx_export`), behind
the same faces as the torch models (:mod:`pipeline.inference.runtime.networks`), so
:func:`pipeline.inference.runtime.render.render_score` renders with them unchanged. Imports no torch: what
`performer render` waits for is then the score and the models, not torch's 1.5-2 s import.

The source-filter vocoder's network runs in the graph; its STFT, phase mixing and inverse STFT run
here in numpy, mirroring ``SourceFilterVocoder.forward`` (``_stft``, the mixing, ``_istft``; tested
equal to it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import MelConfig
from pipeline.errors import PipelineError
from pipeline.inference.runtime.bundle import ModelBundle
from pipeline.inference.runtime.networks import MelNetwork, TimingNetwork, WaveNetwork
from pipeline.models.calibration import Calibration

FORMAT = 2  # pipeline.inference.onnx_export.FORMAT (not imported: that module imports torch)
GRAPHS = {"alignment": "timing.onnx", "synthesis": "mel.onnx", "hifigan": "vocoder.onnx"}
MODEL_NAMES = tuple(GRAPHS)  # pipeline.inference.models.MODEL_NAMES, the training stages' model folders


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initialisers are the exporter's, not the user's
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001  (a damaged or foreign file)
        raise PipelineError(f"cannot load the ONNX graph: {err}", path) from None


class _Graph:
    def __init__(self, path: Path, threads: int) -> None:
        self.session = _session(path, threads)
        self.inputs = [i.name for i in self.session.get_inputs()]  # the exporter drops inputs a graph ignores

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {name: np.ascontiguousarray(feed[name]) for name in self.inputs})


def _with_weights(batch: dict[str, np.ndarray], n_performers: int) -> dict[str, np.ndarray]:
    """The graphs always take a blend: a batch of single performers gets one-hot rows, which give exactly
    the plain lookup (:func:`pipeline.models.performer_blend.performer_vectors`)."""
    if "performer_weights" in batch:
        return batch
    return {**batch, "performer_weights": np.eye(n_performers, dtype=np.float32)[batch["performer"]]}


class OnnxTiming(TimingNetwork):
    def __init__(self, path: Path, hparams: dict[str, Any], threads: int) -> None:
        self.graph = _Graph(path, threads)
        self.hparams = hparams

    def predict(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        _check_notes(batch, self.hparams, "alignment")
        timing, class_tempo = self.graph.run(_with_weights(batch, int(self.hparams["n_performers"])))
        return timing, class_tempo


class OnnxMel(MelNetwork):
    def __init__(self, path: Path, hparams: dict[str, Any], calibration: Calibration, threads: int) -> None:
        self.graph = _Graph(path, threads)
        self.hparams = hparams
        self.calibration = calibration

    def predict(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        _check_notes(batch, self.hparams, "synthesis")
        if batch["frame_mask"].shape[1] > int(self.hparams["max_frames"]):
            raise PipelineError(
                f"the ONNX synthesis graph takes at most {self.hparams['max_frames']} frames a window: "
                "render with --backend torch"
            )
        return self.graph.run(_with_weights(batch, int(self.hparams["n_performers"])))[0]


def _check_notes(batch: dict[str, np.ndarray], hparams: Mapping[str, Any], name: str) -> None:
    """The traced position tables hold ``max_notes`` rows; torch computes a longer one on the fly, the
    graph cannot."""
    limit = int(hparams["max_notes"])
    if batch["pitch"].shape[1] > limit:
        raise PipelineError(
            f"a window holds {batch['pitch'].shape[1]} notes, more than the {limit} the ONNX {name} graph takes: "
            "render with --backend torch"
        )


class OnnxWave(WaveNetwork):
    def __init__(self, path: Path, meta: dict[str, Any], threads: int) -> None:
        self.graph = _Graph(path, threads)
        self.source_kind = str(meta["kind"])
        self.hparams = meta["hparams"]
        self.hop_length = int(meta["hop_length"])
        self.n_mels = int(self.hparams["in_channels"])
        self.excitation = bool(meta["excitation"])
        self.calibration = Calibration.from_dict(meta["calibration"])
        if self.source_kind == "source_filter":
            n_fft = int(self.hparams["n_fft"])
            self.n_fft = n_fft
            # torch.hann_window (periodic), in float32 as the model's buffer
            self.window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
            self.harmonic_scale = float(self.hparams["excitation_amplitude"]) * n_fft / 4.0

    def synthesize(self, mel: np.ndarray, source: np.ndarray | None) -> np.ndarray:
        if self.source_kind != "source_filter":
            feed = {"mel": mel} if source is None else {"mel": mel, "source": source}
            return self.graph.run(feed)[0][0, 0]
        assert source is not None
        harmonic = self.stft(source[0, 0]) / self.harmonic_scale  # (bins, T)
        noise = self.stft(source[0, 1])
        magnitude, gain = self.graph.run(
            {"mel": mel.astype(np.float32), "harmonic_magnitude": np.abs(harmonic)[None].astype(np.float32)}
        )
        mixed = gain[0] * harmonic + noise / np.maximum(np.abs(noise), 1e-8)
        return self.istft(magnitude[0] * (mixed / np.maximum(np.abs(mixed), 1e-8)))

    def stft(self, x: np.ndarray) -> np.ndarray:
        """``SourceFilterVocoder._stft``: ``(samples,)`` -> complex64 ``(bins, samples // hop)``."""
        pad = (self.n_fft - self.hop_length) // 2
        x = np.pad(np.asarray(x, np.float32), (pad, pad))
        frames = np.lib.stride_tricks.sliding_window_view(x, self.n_fft)[:: self.hop_length]
        return np.fft.rfft(frames * self.window, axis=1).T.astype(np.complex64)

    def istft(self, spectrum: np.ndarray) -> np.ndarray:
        """``SourceFilterVocoder._istft``: complex ``(bins, T)`` -> ``(T * hop,)`` float32, weighted overlap-add."""
        t = spectrum.shape[1]
        frames = np.fft.irfft(spectrum, n=self.n_fft, axis=0).astype(np.float32) * self.window[:, None]
        length = (t - 1) * self.hop_length + self.n_fft
        audio = np.zeros(length, np.float32)
        norm = np.zeros(length, np.float32)
        square = self.window**2
        for i in range(t):  # frames overlap n_fft / hop times: a loop of slices is as fast as any fold here
            at = i * self.hop_length
            audio[at : at + self.n_fft] += frames[:, i]
            norm[at : at + self.n_fft] += square
        pad = (self.n_fft - self.hop_length) // 2
        return (audio / np.maximum(norm, 1e-3))[pad : pad + t * self.hop_length]


class OnnxModels(ModelBundle):
    """The three graphs of a folder written by :func:`pipeline.inference.onnx_export.export_onnx`."""

    def __init__(self, folder: str | Path, threads: int = 1) -> None:
        folder = Path(folder)
        meta = read_render_json(folder)
        self.source = str(folder)
        self.mel = MelConfig(**meta["mel"])
        self.alignment = OnnxTiming(folder / GRAPHS["alignment"], meta["alignment"]["hparams"], threads)
        self.synthesis = OnnxMel(
            folder / GRAPHS["synthesis"],
            meta["synthesis"]["hparams"],
            Calibration.from_dict(meta["synthesis"]["calibration"]),
            threads,
        )
        self.vocoder = OnnxWave(folder / GRAPHS["hifigan"], meta["hifigan"], threads)


def read_render_json(folder: Path) -> dict[str, Any]:
    path = folder / "render.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise PipelineError("no exported models here (run `dvc repro export_onnx`)", path) from None
    except (OSError, ValueError) as err:
        raise PipelineError(f"cannot read the export's description: {err}", path) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PipelineError(f"not an export of format {FORMAT} (run `dvc repro export_onnx` again)", path)
    return meta


def onnx_status(models_dir: Path, folder: Path, mel: MelConfig | None = None) -> str | None:
    """Why the export in ``folder`` cannot stand in for the models of ``models_dir`` (missing, exported from
    other ``model.pt`` files than those there now: compared by SHA-256, 20 ms for the built-in models; or,
    given ``mel``, with another mel recipe), or None when it can."""
    from dataclasses import asdict

    from pipeline.io import file_sha256

    try:
        meta = read_render_json(folder)
    except PipelineError as err:
        return str(err)
    if mel is not None and asdict(mel) != meta["mel"]:
        return f"{folder / 'render.json'}: exported with another mel recipe than the parameter file's"
    for name in MODEL_NAMES:
        model = models_dir / name / "model.pt"
        if not model.is_file():
            return f"{model}: missing"
        if meta.get("sha256", {}).get(name) != file_sha256(model):
            return f"{model} changed since it was exported (run `dvc repro export_onnx`)"
    return None
