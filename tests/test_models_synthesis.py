"""Synthesis model and its parts: polyphonic mixer, note-wise positional encoding, rolls, ablations."""

from __future__ import annotations

import pytest
import torch

from pipeline.models.mixer import PolyphonicMixer, sounding_and_position
from pipeline.models.notewise_pe import NoteWisePositionalEncoding
from pipeline.models.persistence import load_model, save_model
from pipeline.models.rolls import piano_and_position_rolls, piano_roll
from pipeline.models.synthesis import SynthesisModel, synthesis_loss

SMALL = dict(d_model=32, encoder_layers=1, decoder_layers=2, heads=2, attention_dim=32, ffn_dim=64, dropout=0.0)
ABLATIONS = [
    dict(),
    dict(note_wise_pe=False),
    dict(performer_embedding=False),
    dict(use_encoder=False),
    dict(use_velocity=True),
    dict(use_velocity=True, use_encoder=False),
]


pytestmark = pytest.mark.usefixtures("one_thread")


def polyphonic_example():
    """A chord, overlapping notes, a one-frame note, a note running past the end, and padding."""
    onset = torch.tensor([[0, 0, 0, 3, 5, 7, 9, 2, 0], [1, 4, 4, 8, 0, 0, 0, 0, 0]])
    offset = torch.tensor([[4, 6, 4, 9, 6, 14, 10, 5, 12], [3, 7, 9, 10, 1, 1, 1, 1, 1]])
    mask = torch.tensor([[True] * 7 + [False] * 2, [True] * 4 + [False] * 5])
    pitch = torch.tensor([[60, 64, 67, 62, 60, 60, 72, 50, 51], [55, 60, 60, 71, 0, 0, 0, 0, 0]])
    return pitch, onset, offset, mask, 12


def loop_sounding_position(onset, offset, mask, n_frames):
    """(B, T, N) sounding mask and relative position, by explicit loops over notes and frames."""
    batch, notes = onset.shape
    sounding = torch.zeros(batch, n_frames, notes)
    position = torch.zeros(batch, n_frames, notes)
    for b in range(batch):
        for n in range(notes):
            if not mask[b, n]:
                continue
            on, off = int(onset[b, n]), int(offset[b, n])
            for t in range(n_frames):
                if on <= t < off:
                    sounding[b, t, n] = 1.0
                    position[b, t, n] = min(1.0, (t - on) / max(1, off - on - 1))
    return sounding, position


def test_mixer_equals_explicit_sum_over_sounding_notes():
    torch.manual_seed(0)
    _pitch, onset, offset, mask, n_frames = polyphonic_example()
    notes = torch.randn(2, 9, 8)
    mixed = PolyphonicMixer()(notes, onset, offset, mask, n_frames)
    expected = torch.zeros(2, n_frames, 8)
    for b in range(2):
        for t in range(n_frames):
            for n in range(9):
                if mask[b, n] and onset[b, n] <= t < offset[b, n]:
                    expected[b, t] += notes[b, n]
    assert mixed.frames.shape == (2, n_frames, 8)
    assert torch.allclose(mixed.frames, expected, atol=1e-6)
    sounding, position = loop_sounding_position(onset, offset, mask, n_frames)
    assert torch.equal(mixed.sounding, sounding)
    assert torch.allclose(mixed.position, position)
    # first frame of a note at 0, last at 1, a one-frame note at 0
    assert mixed.position[0, 5, 5] == 0 and mixed.position[0, 11, 5] == pytest.approx(4 / 6)
    assert mixed.position[0, 3, 3] == 0 and mixed.position[0, 8, 3] == 1
    assert mixed.sounding[0, 9, 6] == 1 and mixed.position[0, 9, 6] == 0
    assert (mixed.frames[1, 10:] == 0).all()


def test_notewise_pe_matches_formula_and_is_identity_at_zero():
    torch.manual_seed(1)
    _pitch, onset, offset, mask, n_frames = polyphonic_example()
    notes = torch.randn(2, 9, 8)
    pe = NoteWisePositionalEncoding(8)
    assert 0 < pe.weight.abs().max() < 0.1  # small random start
    with torch.no_grad():
        pe.weight.copy_(torch.randn(8))
    mixed = PolyphonicMixer()(notes, onset, offset, mask, n_frames)
    out = pe(notes, mixed)
    expected = torch.zeros(2, n_frames, 8)
    for b in range(2):
        for t in range(n_frames):
            for n in range(9):
                on, off = int(onset[b, n]), int(offset[b, n])
                if mask[b, n] and on <= t < off:
                    p = min(1.0, (t - on) / max(1, off - on - 1))
                    expected[b, t] += (1 + p * pe.weight.detach()) * notes[b, n]
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(pe.encode(notes[0, 0], torch.tensor(0.5)), (1 + 0.5 * pe.weight) * notes[0, 0])
    with torch.no_grad():
        pe.weight.zero_()
    assert torch.equal(pe(notes, mixed), mixed.frames)
    assert torch.equal(pe.encode(notes, torch.rand(2, 9)), notes)


def test_piano_and_position_rolls_match_explicit_loops():
    pitch, onset, offset, mask, n_frames = polyphonic_example()
    velocity = torch.randint(1, 128, pitch.shape)
    piano, position = piano_and_position_rolls(pitch, onset, offset, mask, n_frames)
    piano_vel, _ = piano_and_position_rolls(pitch, onset, offset, mask, n_frames, velocity=velocity)
    sounding, rel = loop_sounding_position(onset, offset, mask, n_frames)
    exp_piano, exp_position, exp_vel = (torch.zeros(2, n_frames, 128) for _ in range(3))
    for b in range(2):
        for t in range(n_frames):
            for n in range(9):
                if sounding[b, t, n]:
                    k = int(pitch[b, n])
                    exp_piano[b, t, k] = min(1.0, exp_piano[b, t, k] + 1)
                    exp_vel[b, t, k] = min(1.0, exp_vel[b, t, k] + velocity[b, n] / 127)
                    exp_position[b, t, k] = min(1.0, exp_position[b, t, k] + 1 - rel[b, t, n])
    assert torch.equal(piano, exp_piano)
    assert torch.allclose(position, exp_position)
    assert torch.allclose(piano_vel, exp_vel)
    # the piano roll alone (the harmonic prior's and PerformanceNet's input) is the same roll
    assert torch.equal(piano_roll(pitch, onset, offset, mask, n_frames), exp_piano)
    assert torch.allclose(piano_roll(pitch, onset, offset, mask, n_frames, velocity=velocity), exp_vel)
    # a note's value falls linearly 1 -> 0 across it (pitch 60 in frames 7..13, cut at frame 12)
    assert position[0, 7:12, 60].tolist() == pytest.approx([1, 5 / 6, 4 / 6, 3 / 6, 2 / 6])
    assert position[1, 4:9, 60].tolist() == pytest.approx([1, 1, 0.5, 0.25, 0])  # sum of overlaps, <= 1


def random_clip(gen: torch.Generator, n_notes: int, n_frames: int) -> dict[str, torch.Tensor]:
    onset = torch.sort(torch.randint(0, 200, (n_notes,), generator=gen)).values
    onset_frame = torch.sort(torch.randint(0, n_frames - 1, (n_notes,), generator=gen)).values
    return dict(
        pitch=torch.randint(40, 90, (n_notes,), generator=gen),
        onset=onset,
        duration=torch.randint(1, 100, (n_notes,), generator=gen),
        onset_frame=onset_frame,
        offset_frame=(onset_frame + torch.randint(1, 20, (n_notes,), generator=gen)).clamp(max=n_frames),
        velocity=torch.randint(1, 128, (n_notes,), generator=gen),
    )


def collate(
    items: list[tuple[dict[str, torch.Tensor], int]], n_notes: int, n_frames: int, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """Pad to ``n_notes``/``n_frames``; padded notes hold garbage that would sound if not masked."""
    out: dict[str, list[torch.Tensor]] = {k: [] for k in (*items[0][0], "note_mask", "frame_mask")}
    for it, frames in items:
        real = len(it["pitch"])
        for key, value in it.items():
            fake = torch.randint(0, n_frames // 2, (n_notes - real,), generator=gen)
            if key == "offset_frame":
                fake = fake + n_frames // 2
            out[key].append(torch.cat([value, fake]))
        out["note_mask"].append(torch.arange(n_notes) < real)
        out["frame_mask"].append(torch.arange(n_frames) < frames)
    return {k: torch.stack(v) for k, v in out.items()}


def run(model: SynthesisModel, batch: dict[str, torch.Tensor], performer: torch.Tensor) -> torch.Tensor:
    return model(
        batch["pitch"],
        batch["onset"],
        batch["duration"],
        batch["onset_frame"],
        batch["offset_frame"],
        batch["note_mask"],
        performer,
        batch["frame_mask"],
        batch["velocity"] if model.hparams["use_velocity"] else None,
    )


def test_paper_default_model_forward_shape():
    model = SynthesisModel()
    config = model.config()
    assert (config["encoder_layers"], config["decoder_layers"], config["attention_dim"], config["ffn_dim"]) == (
        3,
        6,
        128,
        512,
    )
    gen = torch.Generator().manual_seed(0)
    batch = collate([(random_clip(gen, 20, 50), 50), (random_clip(gen, 12, 40), 40)], 20, 50, gen)
    mel = run(model, batch, torch.tensor([0, 31]))
    assert mel.shape == (2, 80, 50) and torch.isfinite(mel).all()


@pytest.mark.parametrize("ablation", ABLATIONS, ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()) or "paper")
def test_padding_does_not_change_outputs(ablation):
    torch.manual_seed(2)
    model = SynthesisModel(**ablation).eval()
    if model.hparams["use_encoder"] and model.hparams["note_wise_pe"]:
        with torch.no_grad():
            model.notewise_pe.weight.normal_()  # make the encoding matter
    gen = torch.Generator().manual_seed(3)
    first, second = random_clip(gen, 14, 45), random_clip(gen, 25, 64)
    with torch.no_grad():
        alone = run(model, collate([(first, 45)], 14, 45, gen), torch.tensor([4]))
        both = run(model, collate([(first, 45), (second, 64)], 30, 70, gen), torch.tensor([4, 9]))
    assert torch.allclose(alone[0], both[0, :, :45], atol=1e-5)
    assert not torch.allclose(both[0, :, :40], both[1, :, :40])


def mel_target(batch: dict[str, torch.Tensor], n_frames: int) -> torch.Tensor:
    """A learnable log-mel: pitch templates with a decaying envelope, standardised per mel bin."""
    templates = torch.randn(128, 80, generator=torch.Generator().manual_seed(7))
    sounding, position = sounding_and_position(
        batch["onset_frame"], batch["offset_frame"], batch["note_mask"], n_frames
    )
    weights = sounding * (1 - 0.7 * position)
    mel = weights @ templates[batch["pitch"]]  # (B, T, 80)
    valid = batch["frame_mask"][..., None].float()
    mean = (mel * valid).sum((0, 1)) / valid.sum((0, 1))
    std = (((mel - mean) ** 2 * valid).sum((0, 1)) / valid.sum((0, 1))).sqrt().clamp(min=1e-3)
    return ((mel - mean) / std * valid).transpose(1, 2)


@pytest.mark.parametrize("ablation", [dict(), dict(use_encoder=False)], ids=["paper", "no-encoder"])
def test_overfits_one_batch(ablation):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(4)
    batch = collate([(random_clip(gen, n, t), t) for n, t in ((10, 40), (14, 48), (8, 36))], 14, 48, gen)
    target = mel_target(batch, 48)
    model = SynthesisModel(n_performers=4, **SMALL, **ablation)
    performer = torch.tensor([0, 1, 2])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(120):
        loss = model.loss(run(model, batch, performer), target, batch["frame_mask"])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_loss_ignores_padding_frames():
    pred = torch.zeros(1, 2, 3)
    target = torch.tensor([[[1.0, 2.0, 50.0], [3.0, 0.0, 50.0]]])
    assert synthesis_loss(pred, target, torch.tensor([[True, True, False]])).item() == pytest.approx(14 / 4)


def small_batch(seed: int = 5):
    gen = torch.Generator().manual_seed(seed)
    return collate([(random_clip(gen, 12, 40), 40), (random_clip(gen, 9, 33), 33)], 12, 40, gen)


def test_without_performer_embedding_output_ignores_performer():
    batch = small_batch()
    torch.manual_seed(0)
    ablated = SynthesisModel(performer_embedding=False, **SMALL).eval()
    assert ablated.performer is None and not any(k.startswith("performer") for k in ablated.state_dict())
    assert torch.equal(run(ablated, batch, torch.tensor([0, 1])), run(ablated, batch, torch.tensor([7, 30])))
    full = SynthesisModel(**SMALL).eval()
    assert not torch.allclose(run(full, batch, torch.tensor([0, 1])), run(full, batch, torch.tensor([7, 30])))


def test_without_encoder_decoder_reads_projected_rolls():
    batch = small_batch()
    torch.manual_seed(0)
    model = SynthesisModel(use_encoder=False, **SMALL).eval()
    names = {k.split(".")[0] for k in model.state_dict()}
    assert names == {"roll_projection", "performer", "decoder", "out"}
    assert not hasattr(model, "encoder") and not hasattr(model, "notes") and not hasattr(model, "mixer")
    inputs = model.frame_inputs(
        batch["pitch"],
        batch["onset"],
        batch["duration"],
        batch["onset_frame"],
        batch["offset_frame"],
        batch["note_mask"],
        40,
    )
    piano, position = piano_and_position_rolls(
        batch["pitch"], batch["onset_frame"], batch["offset_frame"], batch["note_mask"], 40
    )
    assert torch.allclose(inputs, model.roll_projection(torch.cat([piano, position], -1)))
    performer = torch.tensor([2, 3])
    mel = run(model, batch, performer)
    # score ticks never reach the decoder; pitches and frames do
    moved = dict(batch, onset=batch["onset"] * 3 + 5, duration=batch["duration"] + 7)
    assert torch.equal(run(model, moved, performer), mel)
    assert not torch.allclose(run(model, dict(batch, pitch=batch["pitch"] + 1), performer), mel)
    full = SynthesisModel(**SMALL).eval()
    assert not torch.allclose(run(full, moved, performer), run(full, batch, performer))


def test_without_notewise_pe_is_the_plain_mixer():
    batch = small_batch()
    torch.manual_seed(0)
    full = SynthesisModel(**SMALL).eval()
    plain = SynthesisModel(note_wise_pe=False, **SMALL).eval()
    assert set(full.state_dict()) - set(plain.state_dict()) == {"notewise_pe.weight"}
    plain.load_state_dict({k: v for k, v in full.state_dict().items() if k != "notewise_pe.weight"})
    performer = torch.tensor([0, 1])
    with torch.no_grad():
        full.notewise_pe.weight.fill_(0.5)
        assert not torch.allclose(run(full, batch, performer), run(plain, batch, performer))
        full.notewise_pe.weight.zero_()
        assert torch.allclose(run(full, batch, performer), run(plain, batch, performer), atol=1e-6)


def test_config_round_trip_through_a_checkpoint(tmp_path):
    model = SynthesisModel(
        n_performers=10, use_velocity=True, max_time=100, max_duration=100, note_wise_pe=False, **SMALL
    )
    save_model(tmp_path / "model.pt", model)  # the stages' own save/load path
    clone = load_model(tmp_path / "model.pt", SynthesisModel)
    assert clone.config() == model.config()
    for a, b in zip(clone.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
