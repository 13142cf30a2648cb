import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.training.loop import Trainer, epoch_batches
from pipeline.training.schedules import transformer_schedule
from tests._params import train_config
from tests._tiny_task import Points, TinyTask, collate

CONFIG = dict(batch_size=8, log_every=2, validate_every=4, checkpoint_every=4)


def train(out, steps):
    trainer = Trainer(TinyTask(), Points(), Points(16, seed=1), collate, train_config(max_steps=steps, **CONFIG), out)
    trainer.fit()
    return trainer


def test_loss_goes_down(tmp_path):
    trainer = train(tmp_path, 60)
    val = [row["loss"] for row in trainer.history if row["split"] == "val"]
    assert val[-1] < 0.5 * val[0]


def test_interrupted_and_resumed_training_matches_uninterrupted(tmp_path):
    whole = train(tmp_path / "whole", 12)
    train(tmp_path / "split", 6)  # "killed" after step 6 (last checkpoint at 6)
    resumed = Trainer(
        TinyTask(), Points(), Points(16, seed=1), collate, train_config(max_steps=12, **CONFIG), tmp_path / "split"
    )
    assert resumed.resumed and resumed.step == 6
    resumed.fit()
    for a, b in zip(whole.modules["net"].state_dict().values(), resumed.modules["net"].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    sa, sb = whole.optimizers["net"].state_dict(), resumed.optimizers["net"].state_dict()
    torch.testing.assert_close(sa["state"][0]["exp_avg"], sb["state"][0]["exp_avg"], rtol=0, atol=0)
    assert whole.schedulers["net"].get_last_lr() == resumed.schedulers["net"].get_last_lr()
    train_rows = lambda t: [r for r in t.history if r["split"] == "train"]  # noqa: E731
    assert train_rows(whole) == train_rows(resumed)  # (the short run also validated at its own end)


def test_a_finished_run_is_not_trained_again(tmp_path):
    first = train(tmp_path, 8)
    again = Trainer(TinyTask(), Points(), Points(16, seed=1), collate, train_config(max_steps=8, **CONFIG), tmp_path)
    assert again.step == 8
    final = again.fit()
    for a, b in zip(first.modules["net"].parameters(), again.modules["net"].parameters()):
        assert torch.equal(a, b)
    # the same validation, and the same history: no second row for the last step's validation (the loss
    # curves of a stage resumed at its end are the bytes of the whole run's)
    assert final == {k: v for k, v in first.history[-1].items() if k not in ("step", "split")}
    assert again.history == first.history
    assert [row["step"] for row in again.history if row["split"] == "val"] == [4, 8]


def test_epoch_batches_are_deterministic_and_split_between_ranks():
    assert epoch_batches(20, 4, 0, 0) == epoch_batches(20, 4, 0, 0)
    assert epoch_batches(20, 4, 0, 0) != epoch_batches(20, 4, 0, 1)
    r0, r1 = epoch_batches(20, 4, 0, 3, 0, 2), epoch_batches(20, 4, 0, 3, 1, 2)
    assert len(r0) == len(r1) and not set().union(*r0) & set().union(*r1)


def test_transformer_schedule_warms_up_then_decays_and_anneals():
    rule = transformer_schedule(128, warmup=100, anneal_steps=(1000,))
    assert rule(50) < rule(100) > rule(400)
    assert rule(1001) == pytest.approx(0.5 * 128**-0.5 * 1001**-0.5)


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
@pytest.mark.slow
def test_two_process_ddp_keeps_rank_weights_identical(tmp_path):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    worker = Path(__file__).with_name("_ddp_worker.py")
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", str(worker), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    initial = TinyTask().modules["net"].state_dict()
    for key in w0:
        torch.testing.assert_close(w0[key], w1[key], rtol=0, atol=0)
    assert not torch.equal(w0["0.weight"], initial["0.weight"])


def test_a_checkpoint_of_other_model_settings_is_not_resumed(tmp_path):
    config = train_config(max_steps=4, **CONFIG)
    Trainer(TinyTask(), Points(), None, collate, config, tmp_path, hparams={"width": 32}).fit()
    same = Trainer(TinyTask(), Points(), None, collate, config, tmp_path, hparams={"width": 32})
    other = Trainer(TinyTask(), Points(), None, collate, config, tmp_path, hparams={"width": 64})
    assert same.resumed and same.step == 4
    assert not other.resumed and other.step == 0


def test_training_speed_counts_every_session_of_a_run(tmp_path):
    from pipeline.training.run import training_speed

    assert training_speed(tmp_path, 0, 10, 2.0) == 5.0
    assert training_speed(tmp_path, 10, 20, 8.0) == 2.0  # resumed at 10: 20 steps in 10 s
    assert training_speed(tmp_path, 20, 20, 0.1) == 2.0  # resumed at its end: no step to time, the run's speed
    assert training_speed(tmp_path, 0, 4, 1.0) == 4.0  # a fresh start is a new record
    assert training_speed(tmp_path, 8, 8, 0.1) is None  # resumed where the record does not reach: unknown
