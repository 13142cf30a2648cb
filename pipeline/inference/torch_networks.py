"""The torch models behind :mod:`pipeline.inference.runtime.networks`' array faces (what `performer render
--backend torch`, the evaluate stage and the registry's models run)."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.inference.runtime.networks import MelNetwork, TimingNetwork, WaveNetwork
from pipeline.models.alignment import AlignmentModel, alignment_inputs, model_class_tempo
from pipeline.models.synthesis import SynthesisModel, synthesis_inputs
from pipeline.models.vocoders import Vocoder, vocoder_kind


def _tensors(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.ascontiguousarray(value)).to(device) for key, value in batch.items()}


class TorchTiming(TimingNetwork):
    def __init__(self, model: AlignmentModel) -> None:
        self.model = model
        self.hparams = model.hparams

    @torch.inference_mode()
    def predict(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        inputs = _tensors(batch, next(self.model.parameters()).device)
        pred = self.model(**alignment_inputs(self.model, inputs)).float().cpu().numpy()
        return pred, model_class_tempo(self.model, inputs["tempo_qpm"].cpu()).numpy()


class TorchMel(MelNetwork):
    def __init__(self, model: SynthesisModel) -> None:
        self.model = model
        self.hparams = model.hparams
        self.calibration = model.calibration

    @torch.inference_mode()
    def predict(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        inputs = _tensors(batch, next(self.model.parameters()).device)
        return self.model(**synthesis_inputs(self.model, inputs)).float().cpu().numpy()


class TorchWave(WaveNetwork):
    def __init__(self, vocoder: Vocoder) -> None:
        self.vocoder = vocoder
        self.source_kind = vocoder_kind(vocoder)
        self.hparams = vocoder.hparams
        self.hop_length = int(vocoder.hop_length)
        self.n_mels = int(self.hparams["in_channels"])
        self.excitation = vocoder.excitation
        self.calibration = vocoder.calibration

    @torch.inference_mode()
    def synthesize(self, mel: np.ndarray, source: np.ndarray | None) -> np.ndarray:
        device = next(self.vocoder.parameters()).device
        mel_t = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32)).to(device)
        source_t = (
            None if source is None else torch.from_numpy(np.ascontiguousarray(source, dtype=np.float32)).to(device)
        )
        return self.vocoder(mel_t, source_t)[0, 0].float().cpu().numpy()
