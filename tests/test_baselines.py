"""The two baselines: PerformanceNet and the HiFi-GAN piano-roll model, their inputs, spectrogram and tasks."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from pipeline.config import TrainConfig, TrainPerformanceNetConfig
from pipeline.mel import LogMelSpectrogram
from pipeline.models.hifigan import mel_l1_loss
from pipeline.models.performancenet import (
    MultiBandResidualBlock,
    PerformanceNet,
    onset_offset_roll,
    performancenet_loss,
)
from pipeline.models.pianoroll_hifigan import PianoRollHifigan
from pipeline.spectrogram import PowerSpectrogram, griffin_lim, log_mel_of_power
from pipeline.training.windows import random_windows, take_frames, take_samples
from tests._params import MEL, PARAMS

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_PN = dict(channels=(16, 32, 32), onoff_channels=8, bands=(2, 4))


def notes_batch():
    """Two clips: a chord, repeated pitches that meet, a note past the clip end, and padding."""
    pitch = torch.tensor([[60, 64, 67, 60, 60, 72], [55, 59, 0, 0, 0, 0]])
    onset = torch.tensor([[0, 0, 0, 4, 8, 10], [2, 5, 0, 0, 0, 0]])
    offset = torch.tensor([[4, 6, 9, 8, 12, 16], [5, 7, 1, 1, 1, 1]])
    mask = torch.tensor([[True] * 6, [True, True] + [False] * 4])
    return pitch, onset, offset, mask, 14


def test_onset_offset_roll_equals_explicit_marks():
    pitch, onset, offset, mask, frames = notes_batch()
    roll = onset_offset_roll(pitch, onset, offset, mask, frames)
    expected = torch.zeros(2, frames, 128)
    for b in range(2):
        for n in range(pitch.shape[1]):
            if not mask[b, n]:
                continue
            expected[b, onset[b, n], pitch[b, n]] += 1
            if offset[b, n] < frames:
                expected[b, offset[b, n], pitch[b, n]] -= 1
    assert torch.equal(roll, expected)
    # pitch 60: note 0 ends where note 3 starts (+1 - 1 = 0 at frame 4); padding left no trace
    assert roll[0, 4, 60] == 0 and roll[0, 0, 60] == 1 and roll[0, 12, 60] == -1
    assert roll[1].abs().sum() == 4 and roll[0, 13:, 72].sum() == 0  # pitch 72 runs past the end: no offset


@pytest.mark.parametrize("frames", [16, 37, 100])
def test_performancenet_output_is_bins_by_frames_for_any_length(frames):
    torch.manual_seed(0)
    model = PerformanceNet(bins=513, **SMALL_PN)
    piano = (torch.rand(2, frames, 128) > 0.97).float()
    out = model(piano, torch.zeros_like(piano))
    assert out.shape == (2, 513, frames) and torch.isfinite(out).all()


def test_performancenet_paper_widths_and_rebuild():
    paper = PerformanceNet()
    assert paper.config()["channels"] == (256, 512, 1024, 2048, 4096)
    assert 150e6 < sum(p.numel() for p in paper.parameters()) < 250e6  # "about 250 M" at F = 1025; 513 bins here
    small = PerformanceNet(bins=65, **SMALL_PN)
    again = PerformanceNet(**small.config())
    assert [p.shape for p in again.parameters()] == [p.shape for p in small.parameters()]
    with pytest.raises(ValueError, match="at least 3 levels"):
        PerformanceNet(channels=(16, 32))


def test_multiband_block_keeps_bands_apart():
    """A change inside one band only changes that band's output (the band convs are separate)."""
    torch.manual_seed(0)
    block = MultiBandResidualBlock(bins=30, bands=3).eval()
    x = torch.randn(1, 30, 12)
    y = x.clone()
    y[0, 12] += 5.0  # bin 12 is in band 1 (bins 10-19)
    delta = (block(y) - block(x)).abs().sum(dim=2)[0]
    assert delta[:10].max() == 0 and delta[20:].max() == 0 and delta[10:20].sum() > 0


def clips_with_audio(frames: int = 48, seed: int = 0):
    """Two clips of plucked tones: notes, frame mask and matching 16 kHz audio (the second one shorter)."""
    g = torch.Generator().manual_seed(seed)
    pitch = torch.tensor([[60, 64, 67, 72], [57, 62, 65, 0]])
    onset = torch.tensor([[0, 10, 22, 34], [0, 14, 30, 0]])
    offset = torch.tensor([[12, 24, 34, 48], [16, 30, 40, 1]])
    mask = torch.tensor([[True] * 4, [True] * 3 + [False]])
    lengths = [frames, frames * 5 // 6]
    audio = torch.zeros(2, frames * 256)
    t = torch.arange(frames * 256) / 16000
    for b in range(2):
        for n in range(4):
            if not mask[b, n]:
                continue
            f0 = 440 * 2 ** ((int(pitch[b, n]) - 69) / 12)
            start, stop = int(onset[b, n]) * 256, min(int(offset[b, n]), frames) * 256
            if start >= stop:
                continue
            env = torch.exp(-(t[: stop - start]) * 6)
            audio[b, start:stop] += (
                0.3 * env * torch.sin(2 * math.pi * f0 * t[: stop - start] + float(torch.rand(1, generator=g)))
            )
    frame_mask = torch.zeros(2, frames, dtype=torch.bool)
    for b, n in enumerate(lengths):
        frame_mask[b, :n] = True
        audio[b, n * 256 :] = 0
    return {
        "pitch": pitch,
        "onset_frame": onset,
        "offset_frame": offset,
        "note_mask": mask,
        "frame_mask": frame_mask,
        "audio": audio,
        "performer": torch.tensor([0, 1]),
    }


def test_performancenet_overfits_one_batch():
    torch.manual_seed(0)
    batch = clips_with_audio()
    model = PerformanceNet(bins=513, **SMALL_PN)
    piano, onoff = PerformanceNet.rolls(batch)
    target = torch.log1p(PowerSpectrogram(MEL)(batch["audio"]))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(60):
        loss = performancenet_loss(model(piano, onoff), target, batch["frame_mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_pianoroll_hifigan_shapes_performer_and_weight_norm():
    torch.manual_seed(0)
    model = PianoRollHifigan(n_performers=3, performer_names=("a", "b", "c")).eval()
    batch = clips_with_audio()
    rolls = model.rolls(batch)
    assert rolls.shape == (2, 48, 256)
    # the position roll falls 1 -> 0 across each note; the piano roll is 1 while it sounds
    assert rolls[0, 0, 60] == 1 and rolls[0, 0, 128 + 60] == 1 and rolls[0, 11, 128 + 60] == 0
    with torch.no_grad():
        out = model(rolls, torch.tensor([0, 1]))
        other = model(rolls, torch.tensor([2, 2]))
        assert out.shape == (2, 1, 48 * 256) and out.abs().max() <= 1
        assert not torch.allclose(out, other)  # the performer embedding conditions the output
        model.remove_weight_norm()
        torch.testing.assert_close(model(rolls, torch.tensor([0, 1])), out, atol=1e-5, rtol=1e-4)
    assert model.generator.config()["upsample_rates"] == (8, 8, 2, 2)
    with pytest.raises(ValueError, match="performer names"):
        PianoRollHifigan(n_performers=1, performer_names=("a", "b"))


@pytest.mark.slow
def test_pianoroll_hifigan_overfits_one_batch_with_mel_l1():
    torch.manual_seed(0)
    batch = clips_with_audio(frames=32)
    mel = LogMelSpectrogram(MEL)
    model = PianoRollHifigan(n_performers=2)
    rolls = model.rolls(batch)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.99))
    losses = []
    for _ in range(150):
        loss = mel_l1_loss(batch["audio"], model(rolls, batch["performer"]), mel)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if len(losses) >= 10 and sum(losses[-5:]) / 5 <= 0.5 * losses[0]:
            break
    assert sum(losses[-5:]) / 5 <= 0.5 * losses[0], losses[::10]


def test_random_windows_stay_inside_real_frames_and_match_the_audio():
    torch.manual_seed(0)
    frame_mask = torch.zeros(3, 50, dtype=torch.bool)
    for b, n in enumerate((50, 20, 8)):
        frame_mask[b, :n] = True
    window = random_windows(frame_mask, 10)
    assert window.shape == (3, 10) and (window[:, 1:] - window[:, :-1] == 1).all()
    assert window[0, -1] < 50 and window[1, -1] < 20 and window[2, 0] == 0  # too short: starts at 0
    x = torch.arange(50.0)[None, :, None].expand(3, 50, 4)  # (B, T, C) holding the frame index
    assert torch.equal(take_frames(x, window, 1)[:, :, 0], window.float())
    assert torch.equal(take_frames(x.transpose(1, 2), window, 2)[:, 0], window.float())
    audio = torch.arange(50 * 4).float().repeat(3, 1)  # hop 4: sample s belongs to frame s // 4
    samples = take_samples(audio, window, hop=4)
    assert torch.equal(samples[:, ::4] // 4, window.float())


def test_baseline_task_trains_on_matching_windows_of_rolls_and_audio():
    from pipeline.training.pianoroll_hifigan_task import PianoRollHifiganTask

    torch.manual_seed(0)
    batch = clips_with_audio()
    model = PianoRollHifigan(n_performers=2)
    task = PianoRollHifiganTask(
        model, replace(PARAMS.train_hifigan_baseline, segment_frames=16), MEL, steps_per_epoch=1
    )
    (rolls, performer), audio = task.generator_io(batch, training=True)
    assert rolls.shape == (2, 16, 256) and audio.shape == (2, 16 * 256) and torch.equal(performer, batch["performer"])
    full = PianoRollHifigan.rolls(batch)
    for b in range(2):  # find the window: its rolls and its audio come from the same frames
        start = next(
            s
            for s in range(48 - 15)
            if torch.equal(full[b, s : s + 16], rolls[b])
            and torch.equal(batch["audio"][b, s * 256 : (s + 16) * 256], audio[b])
        )
        assert start + 16 <= int(batch["frame_mask"][b].sum())
    (whole, _), audio = task.generator_io(batch, training=False)
    assert whole.shape == (2, 48, 256) and audio.shape == (2, 48 * 256)


def test_power_spectrogram_gives_the_project_mel_and_frames():
    audio = torch.randn(2, 16000) * 0.1
    power = PowerSpectrogram(MEL)(audio)
    assert power.shape == (2, 513, 16000 // 256)
    torch.testing.assert_close(log_mel_of_power(power, MEL), LogMelSpectrogram(MEL)(audio), atol=1e-4, rtol=1e-4)


def test_griffin_lim_restores_a_tone_burst_at_its_place():
    """A 440 Hz burst from 0.5 s: the inversion keeps its pitch and starts within a frame of it."""
    sr = 16000
    t = np.arange(sr) / sr
    tone = np.where(t >= 0.5, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    power = PowerSpectrogram(MEL)(torch.from_numpy(tone)).numpy()
    out = griffin_lim(power, MEL, iterations=32)
    assert out.shape == (62 * 256,)
    spectrum = np.abs(np.fft.rfft(out[9000:15000]))
    assert abs(np.argmax(spectrum) * sr / 6000 - 440) < 3
    envelope = np.abs(out) > 0.1
    first = np.argmax(envelope)
    assert abs(first - 8000) < 256, first
    mel = LogMelSpectrogram(MEL)
    near = ((mel(torch.from_numpy(out)) - mel(torch.from_numpy(tone[: len(out)]))) ** 2).mean()
    shifted = ((mel(torch.from_numpy(np.roll(out, 256))) - mel(torch.from_numpy(tone[: len(out)]))) ** 2).mean()
    assert near < shifted  # aligned with the recording's frames, not a hop off


def test_baseline_configs_load_from_params(repo_root):
    from pipeline.config import load_params

    params = load_params(repo_root / "params.yaml")
    assert isinstance(params.train_performancenet, TrainPerformanceNetConfig)
    assert isinstance(params.train_performancenet.train, TrainConfig)
    assert params.train_hifigan_baseline.segment_frames * 256 == params.train_hifigan_v2.segment_samples
    PerformanceNet(**{"bins": params.mel.n_fft // 2 + 1, **params.train_performancenet.model})
