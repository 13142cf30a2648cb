"""The three networks as rendering calls them: arrays in, arrays out, whatever runs them.

:mod:`pipeline.inference.runtime.render` works on numpy arrays (batches from
:func:`pipeline.datasets.batching.collate_arrays`) and asks a network only for its numbers, so the same
windowing, stitching and level code renders with the torch models (:class:`TorchTiming`,
:class:`TorchMel`, :class:`TorchWave`, wrapped around them by :func:`timing_network` & co.) and with
their exported onnxruntime graphs (:mod:`pipeline.inference.runtime.onnx_models`, which never imports torch).

This module imports no torch itself: the torch wrappers import it when one is built, and a torch
model exists only where torch is already loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.models.calibration import Calibration
from pipeline.models.excitation import SourceMaker


class TimingNetwork:
    """The alignment model's face: ``hparams`` (its constructor arguments) and :meth:`predict`."""

    hparams: Mapping[str, Any]

    def predict(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``((B, N, 2) float32 (onset, duration) frames, (B,) float32 qpm of each item's tempo class
        centre)`` for a batch with ``pitch``, ``velocity``, ``score_onset``, ``score_duration``,
        ``note_mask``, ``performer``, ``tempo_qpm`` and ``performer_weights`` (B, n_performers)."""
        raise NotImplementedError


class MelNetwork:
    """The synthesis model's face: ``hparams``, ``calibration`` and :meth:`predict`."""

    hparams: Mapping[str, Any]
    calibration: Calibration

    def predict(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """``(B, n_mels, T)`` float32 log-mel of a batch (the timing keys, ``onset_frame``,
        ``offset_frame``, ``frame_mask`` and ``performer_weights``)."""
        raise NotImplementedError


class WaveNetwork(SourceMaker):
    """The vocoder's face: its kind (``source_kind``), constructor arguments, mel bins, hop, whether it
    needs the notes' excitation, its calibration (the level offset), :meth:`make_source` and
    :meth:`synthesize`."""

    n_mels: int
    excitation: bool
    calibration: Calibration

    def synthesize(self, mel: np.ndarray, source: np.ndarray | None) -> np.ndarray:
        """``(samples,)`` float32 of a log-mel ``(1, n_mels, T)`` and its source ``(1, [channels,] T * hop)``
        (None for a mel-only vocoder), before the level offset."""
        raise NotImplementedError


def timing_network(model: Any) -> TimingNetwork:
    """``model`` as a :class:`TimingNetwork`: itself if it is one, else a torch ``AlignmentModel`` wrapped."""
    if isinstance(model, TimingNetwork):
        return model
    from pipeline.inference.torch_networks import TorchTiming

    return TorchTiming(model)


def mel_network(model: Any) -> MelNetwork:
    """``model`` as a :class:`MelNetwork`: itself if it is one, else a torch ``SynthesisModel`` wrapped."""
    if isinstance(model, MelNetwork):
        return model
    from pipeline.inference.torch_networks import TorchMel

    return TorchMel(model)


def wave_network(model: Any) -> WaveNetwork:
    """``model`` as a :class:`WaveNetwork`: itself if it is one, else a torch vocoder wrapped."""
    if isinstance(model, WaveNetwork):
        return model
    from pipeline.inference.torch_networks import TorchWave

    return TorchWave(model)
