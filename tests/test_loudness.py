"""The level of a log-mel (pipeline.loudness), the performers' levels the synthesis stage stores, and
`performer render` playing at them; model files that are the same bytes for the same weights."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.datasets.clips import ClipDataset
from pipeline.errors import PipelineError
from pipeline.features import save_features
from pipeline.loudness import DB_PER_LOG_UNIT, level_offset_db, mel_level_db, mel_power, set_mel_level, shift_mel_db
from pipeline.mel import log_mel
from pipeline.models.calibration import Calibration
from pipeline.models.persistence import save_model
from pipeline.models.synthesis import SynthesisModel
from pipeline.training.checkpoint import save_checkpoint
from tests._params import MEL, PARAMS
from tests.test_inference import SMALL_SYNTHESIS, long_score, small_models

pytestmark = pytest.mark.usefixtures("one_thread")


def sine(amplitude: float, seconds: float = 1.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * MEL.sample_rate)) / MEL.sample_rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_the_level_of_a_constant_mel_is_its_band_power():
    mel = np.full((MEL.n_mels, 50), math.log(0.1), np.float32)
    assert mel_level_db(mel) == pytest.approx(10 * math.log10(MEL.n_mels * 0.01), abs=1e-5)  # float32 mel
    assert mel_power(mel) == (pytest.approx(50 * MEL.n_mels * 0.01, rel=1e-6), 50)
    assert mel_level_db(mel[:, :0]) == -math.inf


def test_the_mel_level_follows_the_audio_level():
    """Twice the amplitude is +6.02 dB of audio RMS; the real mel recipe's level moves by the same."""
    quiet, loud = (mel_level_db(log_mel(sine(a), MEL)) for a in (0.05, 0.1))
    assert loud - quiet == pytest.approx(20 * math.log10(2), abs=0.01)
    # and one unit added to the log-mel is DB_PER_LOG_UNIT dB, i.e. an amplitude factor of e
    mel = log_mel(sine(0.05), MEL)
    assert mel_level_db(mel + 1.0) - mel_level_db(mel) == pytest.approx(DB_PER_LOG_UNIT, abs=1e-6)


def test_set_mel_level_shifts_the_whole_mel_to_the_target():
    rng = np.random.default_rng(0)
    mel = rng.normal(-4, 2, (MEL.n_mels, 120)).astype(np.float32)
    out = set_mel_level(mel, -12.5)
    assert out.dtype == np.float32
    assert mel_level_db(out) == pytest.approx(-12.5, abs=1e-4)
    shift = out - mel
    assert np.ptp(shift) < 1e-5  # one shift for every bin: the dynamics inside the mel are kept
    assert set_mel_level(mel[:, :0], -12.5).shape == (MEL.n_mels, 0)


def test_the_offset_brings_a_prediction_to_the_targets_pooled_level():
    rng = np.random.default_rng(1)
    target = rng.normal(-4, 2, (MEL.n_mels, 200))
    predicted = target - 0.5
    offset = level_offset_db(mel_power(target)[0], mel_power(predicted)[0])
    assert offset == pytest.approx(0.5 * DB_PER_LOG_UNIT, abs=1e-9)
    assert mel_level_db(shift_mel_db(predicted, offset)) == pytest.approx(mel_level_db(target), abs=1e-9)
    assert level_offset_db(0.0, 1.0) == 0.0 and shift_mel_db(predicted, 0.0) is predicted


def test_the_synthesis_task_measures_its_models_shortfall_on_the_batches_it_is_given():
    from pipeline.datasets.clips import collate_clips, cut_clip
    from pipeline.models.synthesis import synthesis_inputs
    from pipeline.training.synthesis_task import SynthesisTask

    torch.manual_seed(0)
    model = SynthesisModel(n_performers=2, **SMALL_SYNTHESIS).eval()
    notes = long_score(n=12)
    frames = 120
    data = {
        "mel": np.zeros((MEL.n_mels, frames), np.float32),
        "pitch": notes.pitch,
        "velocity": notes.velocity,
        "score_onset": notes.onset,
        "score_duration": notes.duration,
        "onset_frame": (notes.onset // 2).astype(np.int64),
        "offset_frame": (notes.offset // 2).astype(np.int64),
        "performer_id": np.int64(1),
    }
    batch = collate_clips([cut_clip(data, 0, 100), cut_clip(data, 40, 80)])
    with torch.no_grad():
        batch["mel"] = model(**synthesis_inputs(model, batch)) + 0.25  # the recordings: 0.25 louder in log
    task = SynthesisTask(model, PARAMS.train_synthesis.optimizer, MEL)
    assert task.calibrate([batch]) == {"level_offset_db": pytest.approx(0.25 * DB_PER_LOG_UNIT, abs=1e-3)}
    assert "level_offset_db" not in model.config()  # a measurement, not a constructor argument
    assert model.calibration == Calibration()  # the task measures; run_training stores it


def write_recording(root, name: str, performer: int, magnitude: float, frames: int) -> dict:
    mel = np.full((MEL.n_mels, frames), math.log(magnitude), np.float32)
    data = {
        "pitch": np.array([60], np.int16),
        "velocity": np.array([80], np.int16),
        "score_onset": np.array([0], np.int32),
        "score_duration": np.array([12], np.int32),
        "onset_frame": np.array([0], np.int32),
        "offset_frame": np.array([10], np.int32),
        "performer_id": np.int16(performer),
    }
    save_features(root / f"{name}.npz", mel, data)
    return {"id": name, "piece": name, "performer_id": performer, "frames": frames, "notes": 1, "tempo_qpm": 100.0}


def test_each_performer_gets_the_level_of_all_their_frames(tmp_path):
    """Pooled over frames (a long quiet recording weighs more than a short loud one); a performer
    without recordings in the set gets the level of all of them."""
    rows = [
        write_recording(tmp_path, "a1", 0, 0.1, 300),
        write_recording(tmp_path, "a2", 0, 0.4, 100),
        write_recording(tmp_path, "b1", 1, 0.02, 200),
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "index.csv", index=False)
    data = ClipDataset(tmp_path, ["a1", "a2", "b1"], clip_frames=MEL.clip_frames, hop_length=MEL.hop_length)
    levels = data.performer_levels_db(3)
    n = MEL.n_mels
    ana = 10 * math.log10(n * (300 * 0.1**2 + 100 * 0.4**2) / 400)
    ben = 10 * math.log10(n * 0.02**2)
    everyone = 10 * math.log10(n * (300 * 0.1**2 + 100 * 0.4**2 + 200 * 0.02**2) / 600)
    assert levels == pytest.approx((ana, ben, everyone), abs=1e-4)
    with pytest.raises(PipelineError, match=r"performer id 1 outside 0 \.\. 0"):
        data.performer_levels_db(1)


def test_a_calibration_checks_its_values():
    assert Calibration(performer_levels_db=[-20, -3.5]).performer_levels_db == (-20.0, -3.5)
    with pytest.raises(ValueError, match="finite"):
        Calibration(performer_levels_db=(-20.0, math.nan))
    with pytest.raises(ValueError, match="finite"):
        Calibration(level_offset_db=math.inf)
    with pytest.raises(ValueError, match="unknown calibration values: gain"):
        Calibration.from_dict({"gain": 1.0})


def with_levels(levels: tuple[float, ...]):
    models = small_models()
    models.synthesis.calibration = Calibration(performer_levels_db=levels)
    return models


def test_render_plays_at_the_calibrated_or_the_performers_level():
    from pipeline.inference.runtime.render import render_score

    notes = long_score(n=20)
    models = with_levels((-30.0, -12.0))
    own = render_score(models, notes, "ben", loudness="model")
    ben = render_score(models, notes, "ben", loudness="performer")
    assert mel_level_db(ben.mel) == pytest.approx(-12.0, abs=1e-3)
    assert abs(mel_level_db(own.mel) + 12.0) > 1.0  # the untrained model's own level is elsewhere
    assert np.ptp(ben.mel - own.mel) < 1e-4  # the same mel, shifted as a whole
    ana = render_score(models, notes, "ana", loudness="performer")
    assert mel_level_db(ana.mel) == pytest.approx(-30.0, abs=1e-3)
    half = render_score(models, notes, "ana:0.5,ben:0.5", loudness="performer")
    assert mel_level_db(half.mel) == pytest.approx(-21.0, abs=1e-3)
    # a model whose calibration holds no levels plays at its own level
    old = small_models()
    for loudness in ("calibrated", "performer"):
        assert np.array_equal(render_score(old, notes, "ben", loudness=loudness).mel, own.mel)
    # calibrated (the default): the model's own level plus its measured shortfall
    models.synthesis.calibration = replace(models.synthesis.calibration, level_offset_db=4.5)
    calibrated = render_score(models, notes, "ben")
    assert mel_level_db(calibrated.mel) - mel_level_db(own.mel) == pytest.approx(4.5, abs=1e-3)
    assert np.ptp(calibrated.mel - own.mel) < 1e-4
    with pytest.raises(PipelineError, match="loudness must be one of calibrated, performer, model, not 'loud'"):
        render_score(models, notes, "ben", loudness="loud")


def test_model_files_are_the_same_bytes_for_the_same_weights(tmp_path):
    """torch.save names the zip's root folder after the file it is given: written through the random
    temporary name of an atomic write, the bytes would differ run to run (DVC hashes them)."""
    torch.manual_seed(0)
    model = SynthesisModel(n_performers=2, **SMALL_SYNTHESIS)
    save_model(tmp_path / "a" / "model.pt", model)
    save_model(tmp_path / "b" / "model.pt", model)
    assert (tmp_path / "a/model.pt").read_bytes() == (tmp_path / "b/model.pt").read_bytes()
    state = {"step": 3, "weights": model.state_dict()}
    first, second = save_checkpoint(tmp_path / "c", state), save_checkpoint(tmp_path / "d", state)
    assert first.read_bytes() == second.read_bytes()


class ScaledRecording(torch.nn.Module):
    """A stand-in vocoder whose output is given: what HifiganTask.calibrate measures against the audio."""

    excitation = False
    hop_length = MEL.hop_length

    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.out[:, None, :]


def test_the_vocoder_task_measures_the_shortfall_on_real_samples_only():
    from dataclasses import replace

    from pipeline.training.hifigan_task import HifiganTask
    from pipeline.training.pianoroll_hifigan_task import PianoRollHifiganTask

    frames = 40
    audio = torch.from_numpy(np.stack([sine(0.1, frames * MEL.hop_length / MEL.sample_rate)] * 2))
    out = audio * 0.5  # 6.02 dB short
    out[1, 20 * MEL.hop_length :] = 10.0  # padding past the second clip's end: must not count
    mask = torch.ones(2, frames, dtype=torch.bool)
    mask[1, 20:] = False
    config = PARAMS.train_hifigan
    config = replace(config, discriminator_start=config.train.max_steps)  # no discriminators to build
    task = HifiganTask(ScaledRecording(out), config, MEL, steps_per_epoch=1)
    measured = task.calibrate([{"audio": audio, "frame_mask": mask}])
    assert measured == {"level_offset_db": pytest.approx(20 * math.log10(2), abs=1e-3)}
    # the vocoder stage's segments are whole windows, without a frame mask: every sample counts
    task = HifiganTask(ScaledRecording(audio * 0.5), config, MEL, steps_per_epoch=1)
    assert task.calibrate([{"audio": audio}]) == measured
    assert PianoRollHifiganTask.calibrates_level is False  # the baseline's output is scored as it is
    paper = HifiganTask(ScaledRecording(out), replace(config, level_calibration=False), MEL, steps_per_epoch=1)
    assert paper.calibrate([{"audio": audio, "frame_mask": mask}]) == {}  # the paper's V2: its output as it is


def test_a_post_training_setting_does_not_stop_a_finished_checkpoint_from_resuming():
    from pipeline.training.run import resume_settings

    logged = {"learning_rate": 0.001, "level_calibration": True, "train": {"max_steps": 10, "batch_size": 8}}
    assert resume_settings(logged) == resume_settings({**logged, "level_calibration": False})
    assert resume_settings(logged) != resume_settings({**logged, "learning_rate": 0.002})


def test_vocode_adds_the_vocoders_measured_offset_and_it_survives_a_model_file(tmp_path):
    from pipeline.inference.runtime.render import vocode
    from pipeline.models.vocoders import build_vocoder, load_vocoder
    from tests.test_inference import SMALL_VOCODER

    torch.manual_seed(0)
    plain = build_vocoder("hifigan", **SMALL_VOCODER)
    plain.calibration = Calibration(level_offset_db=20 * math.log10(2))
    save_model(tmp_path / "model.pt", plain)
    loaded = load_vocoder(tmp_path / "model.pt")
    assert loaded.calibration.level_offset_db == pytest.approx(6.0206, abs=1e-4)
    mel = np.random.default_rng(0).normal(-5, 1, (MEL.n_mels, 30)).astype(np.float32)
    louder = vocode(loaded, mel)
    loaded.calibration = Calibration()
    np.testing.assert_allclose(louder, 2.0 * vocode(loaded, mel), rtol=1e-5, atol=1e-7)
