"""Run under torchrun: trains the tiny task with DDP and saves this rank's final weights."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.training.loop import Trainer
from tests._params import train_config
from tests._tiny_task import Points, TinyTask, collate

out = Path(sys.argv[1])
trainer = Trainer(
    TinyTask(),
    Points(),
    None,
    collate,
    train_config(max_steps=20, batch_size=8, log_every=5, validate_every=100, checkpoint_every=10),
    out,
)
trainer.fit()
torch.save(trainer.modules["net"].state_dict(), out / f"rank{trainer.rank}.pt")
