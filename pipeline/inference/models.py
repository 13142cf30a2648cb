"""The three trained models of a Deep Performer as one bundle, and loading them from a folder of the
training stages' outputs (MLflow URIs: :func:`pipeline.registry.loading.load_models`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.config import MelConfig
from pipeline.errors import PipelineError
from pipeline.inference.runtime.bundle import ModelBundle
from pipeline.models.alignment import AlignmentModel
from pipeline.models.persistence import load_model
from pipeline.models.synthesis import SynthesisModel
from pipeline.models.vocoders import Vocoder, load_vocoder

MODEL_NAMES = ("alignment", "synthesis", "hifigan")  # the stage outputs models/<name>/model.pt


@dataclass
class PerformerModels(ModelBundle):
    """The three models of a Deep Performer, in eval mode on one device, and the mel recipe they were
    trained on (params.yaml's ``mel`` group: frame rate, sample rate, the training clips' length).
    What they know about performers and levels: :class:`pipeline.inference.runtime.bundle.ModelBundle`."""

    alignment: AlignmentModel
    synthesis: SynthesisModel
    vocoder: Vocoder
    mel: MelConfig
    source: str = ""

    def __post_init__(self) -> None:
        a, s = self.alignment.hparams, self.synthesis.hparams
        if tuple(a["performer_names"]) != tuple(s["performer_names"]):
            raise PipelineError(
                "the alignment and synthesis models know different performers "
                f"({list(a['performer_names'])} vs {list(s['performer_names'])})",
                self.source,
            )
        if s["n_mels"] != self.vocoder.hparams["in_channels"] or s["n_mels"] != self.mel.n_mels:
            raise PipelineError(
                f"the synthesis model's mel bins ({s['n_mels']}), the vocoder's input "
                f"({self.vocoder.hparams['in_channels']}) and the mel recipe's "
                f"({self.mel.n_mels}) differ",
                self.source,
            )
        frame_rate = self.mel.sample_rate / self.mel.hop_length
        if abs(a["frame_rate"] - frame_rate) > 1e-6 or self.vocoder.hop_length != self.mel.hop_length:
            raise PipelineError(
                f"the models were trained at another frame rate than the mel recipe's {frame_rate:g} frames/s",
                self.source,
            )

    @property
    def device(self) -> torch.device:
        return next(self.synthesis.parameters()).device

    def to(self, device: str | torch.device) -> PerformerModels:
        for model in (self.alignment, self.synthesis, self.vocoder):
            model.to(device)
        return self


def load_folder(root: Path, mel: MelConfig, device: str | torch.device = "cpu") -> PerformerModels:
    """The three models from a folder of the training stages' outputs (``models/`` of the project):
    ``alignment/model.pt``, ``synthesis/model.pt``, ``hifigan/model.pt``."""
    if not root.is_dir():
        raise PipelineError("models folder not found (run `dvc repro` to train the models)", root)
    paths = {name: root / name / "model.pt" for name in MODEL_NAMES}
    for name, path in paths.items():
        if not path.is_file():
            raise PipelineError(f"no trained {name} model (run `dvc repro train_{name}`)", path)
    try:
        alignment = load_model(paths["alignment"], AlignmentModel)
        synthesis = load_model(paths["synthesis"], SynthesisModel)
        vocoder = load_vocoder(paths["hifigan"])
    except PipelineError:
        raise
    except Exception as err:  # noqa: BLE001  (a damaged or foreign file)
        raise PipelineError(f"cannot load the models: {err}", root) from None
    return PerformerModels(alignment, synthesis, vocoder, mel, source=str(root)).to(device)
