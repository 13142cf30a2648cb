"""Alignment model, its building blocks (transformer, note tokens, tempo classes) and timelines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.models.alignment import AlignmentModel, alignment_loss, to_timeline
from pipeline.models.note_encoding import inter_onset_ticks, metric_tokens
from pipeline.models.persistence import load_model, save_model
from pipeline.models.tempo import tempo_centers, tempo_class, tempo_classes, tempo_edges
from pipeline.models.transformer import FFTStack, sinusoidal_encoding
from tests._params import MEL

FRAME_RATE = MEL.sample_rate / MEL.hop_length

SMALL = dict(d_model=32, layers=2, heads=2, attention_dim=32, ffn_dim=64, dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")


def random_score(gen: torch.Generator, n: int) -> dict[str, torch.Tensor]:
    """One score of ``n`` notes in score order, with chords (IOI 0)."""
    ioi = torch.tensor([0, 6, 12, 24, 48])[torch.randint(0, 5, (n,), generator=gen)]
    ioi[0] = 0
    onset = torch.cumsum(ioi, 0)
    return dict(
        pitch=torch.randint(40, 90, (n,), generator=gen),
        onset=onset,
        duration=torch.tensor([6, 12, 24, 36, 120])[torch.randint(0, 5, (n,), generator=gen)],
        velocity=torch.randint(1, 128, (n,), generator=gen),
    )


def pad_batch(items: list[dict[str, torch.Tensor]], n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Stack items padded to ``n`` notes with random garbage (mask False) in the padding."""
    out: dict[str, list[torch.Tensor]] = {k: [] for k in (*items[0], "mask")}
    for it in items:
        real = len(it["pitch"])
        for key, value in it.items():
            fake = torch.randint(0, 127, (n - real,), generator=gen)
            out[key].append(torch.cat([value, fake]))
        out["mask"].append(torch.arange(n) < real)
    return {k: torch.stack(v) for k, v in out.items()}


def test_sinusoidal_encoding_values():
    table = sinusoidal_encoding(50, 16)
    assert table.shape == (50, 16)
    assert torch.allclose(table[:, 0], torch.sin(torch.arange(50.0)))
    assert torch.allclose(table[:, 1], torch.cos(torch.arange(50.0)))
    assert torch.allclose(table[7, 4], torch.sin(torch.tensor(7.0 / 10000 ** (4 / 16))))


def test_fft_stack_ignores_padding_and_survives_empty_sequences():
    torch.manual_seed(0)
    stack = FFTStack(layers=2, dim=16, heads=2, attention_dim=16, ffn_dim=32, dropout=0.0).eval()
    x = torch.randn(2, 9, 16)
    mask = torch.arange(9)[None] < torch.tensor([[6], [0]])
    y = stack(x, mask)
    assert torch.isfinite(y).all() and (y[1] == 0).all() and (y[0, 6:] == 0).all()
    alone = stack(x[:1, :6], torch.ones(1, 6, dtype=torch.bool))
    assert torch.allclose(alone, y[:1, :6], atol=1e-5)


def test_tempo_classes_are_log_spaced_and_clamped():
    edges = tempo_edges(20, (30.0, 300.0))
    assert edges[0] == pytest.approx(30.0) and edges[-1] == pytest.approx(300.0)
    assert np.allclose(edges[1:] / edges[:-1], 10 ** (1 / 20))
    assert [tempo_class(e) for e in edges[:-1]] == list(range(20))
    assert tempo_class(120.0) == 12 and tempo_class(60.0) == 6
    assert tempo_class(5.0) == 0 and tempo_class(1000.0) == 19
    centers = tempo_centers()
    assert tempo_classes(torch.as_tensor(centers)).tolist() == list(range(20))
    qpm = torch.linspace(10, 400, 500)
    assert (tempo_classes(qpm).diff() >= 0).all()
    with pytest.raises(ValueError):
        tempo_class(0.0)


def test_metric_tokens_are_clip_invariant_and_clipped():
    onset = torch.tensor([[0, 0, 12, 24, 24, 200, 224, 230]])
    duration = torch.tensor([[12, 12, 12, 300, 0, 24, 6, 97]])
    mask = torch.ones_like(onset, dtype=torch.bool)
    time, dur = metric_tokens(onset, duration, mask)
    assert time.tolist() == [[0, 0, 12, 12, 0, 96, 24, 6]]
    assert dur.tolist() == [[12, 12, 12, 96, 0, 24, 6, 96]]
    # a clip cut out of the piece, re-based to its first note: same tokens but for the first note
    clip_time, clip_dur = metric_tokens(onset[:, 3:] - 24, duration[:, 3:], mask[:, 3:])
    assert clip_time[0, 0] == 0 and torch.equal(clip_time[:, 1:], time[:, 4:])
    assert torch.equal(clip_dur, dur[:, 3:])


def test_inter_onset_skips_padding_wherever_it_is():
    onset = torch.tensor([[5, 99, 10, 3, 30, 7]])
    mask = torch.tensor([[True, False, True, True, True, False]])
    assert inter_onset_ticks(onset, mask).tolist() == [[0, 0, 5, 0, 27, 0]]  # a step back counts as 0


def test_paper_default_model_forward_shape():
    model = AlignmentModel(frame_rate=FRAME_RATE)
    assert model.config()["layers"] == 3 and model.config()["attention_dim"] == 64
    gen = torch.Generator().manual_seed(0)
    batch = pad_batch([random_score(gen, 30), random_score(gen, 20)], 30, gen)
    pred = model(
        batch["pitch"], batch["onset"], batch["duration"], batch["mask"], torch.tensor([0, 31]), torch.tensor([3, 12])
    )
    assert pred.shape == (2, 30, 2) and pred.dtype == torch.float32
    assert (pred[1, 20:] == 0).all()
    # an untrained model with the tempo prior is the constant-tempo rendering at the class centre
    frames_per_tick = 16000 / 256 * 60 / (tempo_centers()[12] * 24)
    assert torch.allclose(pred[1, :20, 0], batch["onset"][1, :20] * frames_per_tick, atol=1e-3)
    assert torch.allclose(pred[1, :20, 1], batch["duration"][1, :20] * frames_per_tick, atol=1e-3)


@pytest.mark.parametrize("use_velocity", [False, True])
def test_padding_does_not_change_predictions(use_velocity):
    torch.manual_seed(1)
    model = AlignmentModel(frame_rate=FRAME_RATE, use_velocity=use_velocity).eval()
    gen = torch.Generator().manual_seed(2)
    first, second = random_score(gen, 17), random_score(gen, 25)
    alone = pad_batch([first], 17, gen)
    both = pad_batch([first, second], 40, gen)
    vel = (lambda b: b["velocity"]) if use_velocity else (lambda b: None)
    with torch.no_grad():
        p1 = model(
            alone["pitch"],
            alone["onset"],
            alone["duration"],
            alone["mask"],
            torch.tensor([3]),
            torch.tensor([9]),
            vel(alone),
        )
        p2 = model(
            both["pitch"],
            both["onset"],
            both["duration"],
            both["mask"],
            torch.tensor([3, 5]),
            torch.tensor([9, 14]),
            vel(both),
        )
    assert torch.allclose(p1[0], p2[0, :17], atol=1e-5)
    assert not torch.allclose(p2[0, :17], p2[1, :17])


@pytest.mark.parametrize("tempo_prior", [True, False])
def test_overfits_one_batch(tempo_prior):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    items = [random_score(gen, n) for n in (24, 18, 30)]
    batch = pad_batch(items, 30, gen)
    mask = batch["mask"]
    # performed timing: a tempo of 100-140 qpm with a smooth rubato, notes played a bit short
    qpm = torch.tensor([100.0, 120.0, 140.0])
    fpt = (16000 / 256 * 60 / (qpm * 24))[:, None]
    rubato = 1 + 0.3 * torch.sin(torch.arange(30.0)[None] / 4 + torch.arange(3.0)[:, None])
    ioi = inter_onset_ticks(batch["onset"], mask) * fpt * rubato
    target_onset = torch.cumsum(ioi, 1) + torch.tensor([[2.0], [-3.0], [0.0]])
    target_duration = batch["duration"] * fpt * 0.8
    performer, tempo = torch.tensor([0, 1, 2]), tempo_classes(qpm)
    model = AlignmentModel(frame_rate=FRAME_RATE, n_performers=4, tempo_prior=tempo_prior, **SMALL)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3 if tempo_prior else 1e-2)
    losses = []
    for _ in range(80):
        pred = model(batch["pitch"], batch["onset"], batch["duration"], mask, performer, tempo)
        loss = model.loss(pred, target_onset, target_duration, mask)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    if tempo_prior:  # the learned tempo correction removes most of the constant-tempo error
        assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


def test_loss_is_masked_mse_in_frames():
    pred = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    loss = alignment_loss(pred, torch.tensor([[0.0, 3.0, 0.0]]), torch.tensor([[2.0, 0.0, 0.0]]), mask)
    assert loss.item() == pytest.approx((1 + 0 + 0 + 16) / 4)


def check_timeline(onset, offset, score, mask, n_frames=None):
    for b in range(score.shape[0]):
        valid = mask[b]
        on, off, sc = onset[b][valid], offset[b][valid], score[b][valid]
        assert (on >= 0).all() and (off - on >= 1).all()
        if n_frames is not None:
            assert (on < n_frames).all() and (off <= n_frames).all()
        before = sc[:, None] <= sc[None, :]
        assert (on[:, None] <= on[None, :])[before].all(), "onset not monotone in score time"
        same = sc[:, None] == sc[None, :]
        assert (on[:, None] == on[None, :])[same].all(), "chord notes with different onsets"
        assert (onset[b][~valid] == 0).all() and (offset[b][~valid] == 1).all()


def test_to_timeline_repairs_adversarial_predictions():
    gen = torch.Generator().manual_seed(5)
    score = torch.tensor([[0, 0, 0, 12, 24, 24, 36, 36, 48, 48], [0, 6, 6, 6, 30, 42, 42, 42, 0, 0]])
    mask = torch.tensor([[True] * 10, [True] * 8 + [False] * 2])
    for trial in range(20):
        onset = torch.randn(2, 10, generator=gen) * 50 - 10 * trial  # decreasing, negative, random
        duration = torch.randn(2, 10, generator=gen) * 5 - 3  # many negative
        pred = torch.stack([onset, duration], -1)
        check_timeline(*to_timeline(pred, score, mask), score, mask)
        check_timeline(*AlignmentModel.to_timeline(pred, score, mask, n_frames=40), score, mask, n_frames=40)
    # decreasing onsets along the score collapse to a running maximum; chords take their mean
    pred = torch.tensor([[[10.0, 5.0], [20.0, -4.0], [8.0, 0.2], [3.0, 2.6]]])
    onset, offset = to_timeline(pred, torch.tensor([[0, 0, 12, 24]]), torch.ones(1, 4, dtype=torch.bool))
    assert onset.tolist() == [[15, 15, 15, 15]] and offset.tolist() == [[20, 16, 16, 18]]


def test_to_timeline_handles_unsorted_scores():
    score = torch.tensor([[24, 0, 12, 0, 36]])
    mask = torch.ones(1, 5, dtype=torch.bool)
    pred = torch.tensor([[[5.0, 1.0], [9.0, 1.0], [2.0, 1.0], [1.0, 1.0], [30.0, 1.0]]])
    onset, offset = to_timeline(pred, score, mask)
    assert onset.tolist() == [[5, 5, 5, 5, 30]]
    check_timeline(onset, offset, score, mask)


def test_config_round_trip_through_a_checkpoint(tmp_path):
    model = AlignmentModel(frame_rate=FRAME_RATE, n_performers=5, n_tempo_classes=8, use_velocity=True, **SMALL)
    save_model(tmp_path / "model.pt", model)  # the stages' own save/load path
    clone = load_model(tmp_path / "model.pt", AlignmentModel)
    assert clone.config() == model.config()
    for a, b in zip(clone.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
