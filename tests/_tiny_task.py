"""A tiny regression task that exercises the shared training loop quickly."""

import torch
from torch import nn
from torch.utils.data import Dataset

from pipeline.training.schedules import transformer_schedule


class Points(Dataset):
    def __init__(self, n=64, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def collate(items):
    return {"x": torch.stack([i["x"] for i in items]), "y": torch.stack([i["y"] for i in items])}


class TinyTask:
    def __init__(self):
        torch.manual_seed(0)
        self.modules = {"net": nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 1))}

    def optimizers(self):
        opt = torch.optim.Adam(self.modules["net"].parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
        return {"net": (opt, transformer_schedule(d_model=32, warmup=10))}

    def loss(self, batch):
        return nn.functional.mse_loss(self.modules["net"](batch["x"]).squeeze(-1), batch["y"])

    def training_step(self, batch, step):
        loss = self.loss(batch)
        step.optimize("net", loss)
        return {"loss": loss.item()}

    def validation_step(self, batch):
        return {"loss": self.loss(batch).item()}

    def examples(self, batch):
        return {}
