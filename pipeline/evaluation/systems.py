"""The systems the evaluate stage compares, each turning a batch of held-out clips into audio (and a mel),
and the loading of the models they play (the table's rows, :mod:`pipeline.evaluation.rows`, are built
from these).

Every synthesis system gets the same input: a ``collate_clips`` batch of held-out clips with their
aligned notes (the recording's own timing, as in the paper's Table 2) and audio. Each returns, per
clip, the waveform it makes and, where it has one, its own log-mel prediction:

* ``Deep Performer`` and its ablations: synthesis model -> log-mel -> HiFi-GAN vocoder;
* ``HiFi-GAN baseline``: aligned piano roll + position roll -> waveform (no mel in between, so its
  "own mel" is the mel of its audio, the only mel the paper's Table 2 can score it on);
* ``PerformanceNet``: piano roll -> log1p power spectrogram (its own mel: the project's mel of that
  spectrogram) -> Griffin-Lim;
* ``Vocoder reconstruction``: the recording's mel -> HiFi-GAN (the vocoder's ceiling);
* ``Griffin-Lim reconstruction``: the recording's mel -> Griffin-Lim (no training: the floor any
  vocoder must beat);
* ``Recording``: the recording itself (the ceiling of every audio metric);
* the FluidSynth rows: the score through FluidSynth (:mod:`pipeline.evaluation.fluidsynth`).

Loading is strict: a system whose model is missing raises a PipelineError naming it, so the table
never has silent gaps. :class:`ModelFolder` loads a model that several rows play through (a vocoder,
the alignment model) once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.config import MelConfig
from pipeline.errors import PipelineError
from pipeline.inference.runtime.render import vocode
from pipeline.loudness import shift_mel_db
from pipeline.mel import LogMelSpectrogram
from pipeline.models.alignment import AlignmentModel
from pipeline.models.performancenet import PerformanceNet
from pipeline.models.pianoroll_hifigan import PianoRollHifigan
from pipeline.models.synthesis import SynthesisModel, synthesis_inputs
from pipeline.models.vocoders import Vocoder
from pipeline.models.vocoders import load_vocoder as load_vocoder_file
from pipeline.spectrogram import griffin_lim, griffin_lim_from_mel, log_mel_of_power


@dataclass
class ClipOutput:
    """One system's rendition of a clip, as scored by the evaluation and shown in the listening report."""

    audio: np.ndarray  # (samples,) float32, 16 kHz, the clip's length
    mel: np.ndarray | None = None  # (n_mels, frames): the system's own log-mel prediction, if it has one
    # a rendering whose timing can leave a clip with no note sounding (FluidSynth at a constant tempo):
    # its silence is scored, not refused (the silence check is there to catch broken models)
    may_be_silent: bool = False


Batch = dict[str, torch.Tensor]
System = Callable[[Batch], list[ClipOutput]]


def _frames(batch: Batch) -> list[int]:
    return [int(n) for n in batch["frame_mask"].sum(dim=1)]


def require_model(path: Path, system: str) -> Path:
    if not path.is_file():
        raise PipelineError(f"system {system!r} has no trained model (run its training stage first)", path)
    return path


def load_vocoder(models: Path, folder: str = "hifigan") -> Vocoder:
    """The vocoder trained into ``models/<folder>`` (whichever kind it is), for inference."""
    return load_vocoder_file(require_model(models / folder / "model.pt", "vocoder"))


def load_alignment(models: Path) -> AlignmentModel:
    """The alignment model trained into ``models/alignment`` (the timing rows), for inference."""
    from pipeline.models.persistence import load_model

    return load_model(require_model(models / "alignment" / "model.pt", "alignment model"), AlignmentModel)


class ModelFolder:
    """The folder of trained models (``<root>/<name>/model.pt``) as the rows' build functions see it:
    ``root`` for a model of one row, and the models several rows play through, each loaded once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._vocoders: dict[str, Vocoder] = {}
        self._alignment: AlignmentModel | None = None

    def vocoder(self, folder: str = "hifigan") -> Vocoder:
        """The vocoder in ``<root>/<folder>`` (:func:`load_vocoder`)."""
        if folder not in self._vocoders:
            self._vocoders[folder] = load_vocoder(self.root, folder)
        return self._vocoders[folder]

    def alignment(self) -> AlignmentModel:
        """The alignment model in ``<root>/alignment`` (:func:`load_alignment`)."""
        if self._alignment is None:
            self._alignment = load_alignment(self.root)
        return self._alignment


def clip_source(vocoder: Vocoder, batch: Batch, i: int, frames: int, sample_rate: int) -> np.ndarray | None:
    """The excitation of clip ``i`` of a batch from its (aligned) notes; None for a mel-only vocoder."""
    mask = batch["note_mask"][i]
    tuning = float(batch["tuning_cents"][i]) if "tuning_cents" in batch else 0.0
    return vocoder.make_source(
        batch["pitch"][i][mask].numpy(),
        batch["onset_frame"][i][mask].numpy(),
        batch["offset_frame"][i][mask].numpy(),
        frames,
        sample_rate,
        tuning,
    )


def synthesis_system(models: Path, folder: str, vocoder: Vocoder, name: str, sample_rate: int) -> System:
    """A synthesis model (``models/<folder>``) followed by the vocoder."""
    from pipeline.models.persistence import load_model

    model = load_model(require_model(models / folder / "model.pt", name), SynthesisModel)

    offset = model.calibration.level_offset_db  # as `performer render` plays it

    @torch.inference_mode()
    def run(batch: Batch) -> list[ClipOutput]:
        mel = model(**synthesis_inputs(model, batch)).float().numpy()
        return [  # the mel scores are the model's own mel's; the audio is at its calibrated level
            ClipOutput(
                vocode(
                    vocoder, shift_mel_db(mel[i, :, :n], offset), source=clip_source(vocoder, batch, i, n, sample_rate)
                ),
                mel[i, :, :n],
            )
            for i, n in enumerate(_frames(batch))
        ]

    return run


def pianoroll_hifigan_system(models: Path, mel_config: MelConfig, name: str = "HiFi-GAN baseline") -> System:
    """The HiFi-GAN piano-roll baseline (``models/hifigan_baseline``): rolls + performer -> waveform."""
    from pipeline.models.persistence import load_model

    model = load_model(require_model(models / "hifigan_baseline" / "model.pt", name), PianoRollHifigan)
    model.remove_weight_norm()
    mel = LogMelSpectrogram(mel_config)

    @torch.inference_mode()
    def run(batch: Batch) -> list[ClipOutput]:
        audio = model(model.rolls(batch), batch["performer"])[:, 0].float()
        outputs = []
        for i, n in enumerate(_frames(batch)):
            clip = audio[i, : n * model.hop_length]
            outputs.append(ClipOutput(clip.numpy(), mel(clip).numpy()))
        return outputs

    return run


def performancenet_system(
    models: Path, mel_config: MelConfig, iterations: int = 32, name: str = "PerformanceNet"
) -> System:
    """PerformanceNet (``models/performancenet``): piano roll -> power spectrogram -> Griffin-Lim."""
    from pipeline.models.persistence import load_model

    model = load_model(require_model(models / "performancenet" / "model.pt", name), PerformanceNet)
    config = mel_config

    @torch.inference_mode()
    def run(batch: Batch) -> list[ClipOutput]:
        power = torch.expm1(model(*model.rolls(batch)).float()).clamp(min=0)  # (B, bins, T)
        mels = log_mel_of_power(power, config)
        return [
            ClipOutput(griffin_lim(power[i, :, :n].numpy(), config, iterations), mels[i, :, :n].numpy())
            for i, n in enumerate(_frames(batch))
        ]

    return run


def vocoder_reconstruction(vocoder: Vocoder, sample_rate: int) -> System:
    @torch.inference_mode()
    def run(batch: Batch) -> list[ClipOutput]:
        mel = batch["mel"].numpy()
        return [
            ClipOutput(vocode(vocoder, mel[i, :, :n], source=clip_source(vocoder, batch, i, n, sample_rate)))
            for i, n in enumerate(_frames(batch))
        ]

    return run


def griffin_lim_reconstruction(mel_config: MelConfig, iterations: int = 32) -> System:
    """The recording's own log-mel back to audio by Griffin-Lim: the vocoder's floor."""

    def run(batch: Batch) -> list[ClipOutput]:
        mel = batch["mel"].numpy()
        return [
            ClipOutput(griffin_lim_from_mel(mel[i, :, :n], mel_config, iterations))
            for i, n in enumerate(_frames(batch))
        ]

    return run


def recording(hop_length: int) -> System:
    def run(batch: Batch) -> list[ClipOutput]:
        audio = batch["audio"].numpy()
        return [ClipOutput(audio[i, : n * hop_length].copy()) for i, n in enumerate(_frames(batch))]

    return run
