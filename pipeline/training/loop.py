"""The training loop shared by the alignment, synthesis and vocoder models.

A model family plugs in as a :class:`TrainTask` (its modules, optimisers and one training and
validation step); :class:`Trainer` owns everything else: device and precision, deterministic
data order, gradient clipping, LR schedules, periodic validation, atomic checkpoints with
automatic resume (same step, optimiser, scheduler, RNG and data position), progress bars,
tracking, and multi-process data-parallel training under ``torchrun`` (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sized
from pathlib import Path
from typing import Any, Protocol, cast

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pipeline.config import TrainConfig
from pipeline.device import autocast, autocast_dtype, select_device
from pipeline.training.checkpoint import LATEST, load_checkpoint, save_checkpoint


class Tracker(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_examples(self, examples: dict[str, Any], step: int) -> None: ...


class TrainTask(Protocol):
    """What a model family provides. Modules are built on the CPU; the trainer moves them."""

    modules: dict[str, nn.Module]

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, Callable[[int], float]]]:
        """Optimisers by name, each with its LR multiplier per step (a LambdaLR rule)."""
        ...

    def training_step(self, batch: dict[str, torch.Tensor], step: StepContext) -> dict[str, float]:
        """Forward, then ``step.optimize(name, loss)`` per optimiser; returns losses to log."""
        ...

    def validation_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Losses of one batch (means); the trainer averages them over batches."""
        ...

    def examples(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Things to look at and listen to (mel arrays, audio) for one validation batch."""
        ...


class StepContext:
    """Handed to ``training_step``: precision-aware backward, clipping and optimiser step."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.device = trainer.device

    def autocast(self):
        return autocast(self.device, self.trainer.amp_dtype)

    def optimize(self, name: str, loss: torch.Tensor, parameters: list[nn.Parameter] | None = None) -> float:
        """Backward ``loss`` and step optimiser ``name``; returns the gradient norm before clipping."""
        trainer = self.trainer
        optimizer = trainer.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        trainer.scaler.scale(loss).backward()
        trainer.scaler.unscale_(optimizer)
        params = parameters or [p for group in optimizer.param_groups for p in group["params"]]
        clip = trainer.config.grad_clip if trainer.config.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        trainer.scaler.step(optimizer)
        trainer.scaler.update()
        return float(norm)


def distributed_env() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) when not distributed."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """Deterministic shuffled batches of one epoch for one rank (drop-last, equal count on every rank)."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    per_rank = len(order) // world
    mine = order[rank * per_rank : (rank + 1) * per_rank]
    size = min(batch_size, len(mine)) or 1
    return [mine[i : i + size] for i in range(0, len(mine) - size + 1, size)]


class Trainer:
    def __init__(
        self,
        task: TrainTask,
        train_set: Dataset,
        val_set: Dataset | None,
        collate: Callable[[list], dict[str, torch.Tensor]],
        config: TrainConfig,
        out_dir: str | Path,
        tracker: Tracker | None = None,
        hparams: dict[str, Any] | None = None,
    ) -> None:
        self.task, self.train_set, self.val_set, self.collate = task, train_set, val_set, collate
        self.config, self.out_dir, self.tracker, self.hparams = config, Path(out_dir), tracker, hparams or {}
        self.rank, self.local_rank, self.world = distributed_env()
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and config.device in ("auto", "cuda") else "gloo"
            dist.init_process_group(backend)
        self.device = select_device(config.device, self.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.amp_dtype = autocast_dtype(self.device, config.precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        torch.manual_seed(config.seed + self.rank)

        self.modules = {name: m.to(self.device) for name, m in task.modules.items()}
        self.optimizers, self.schedulers = {}, {}
        for name, (optimizer, rule) in task.optimizers().items():
            self.optimizers[name] = optimizer
            self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(optimizer, rule)
        if self.world > 1:
            for name, module in self.modules.items():
                if any(p.requires_grad for p in module.parameters()):
                    ids = [self.device.index] if self.device.type == "cuda" else None
                    task.modules[name] = DistributedDataParallel(module, device_ids=ids)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.history: list[dict[str, Any]] = []
        self.resumed = self._resume()

    # ---------------------------------------------------------------- state
    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def state(self) -> dict[str, Any]:
        state = {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "modules": {n: m.state_dict() for n, m in self.modules.items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "rng": torch.get_rng_state(),
            "history": self.history,
            "hparams": self.hparams,
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def _resume(self) -> bool:
        path = self.out_dir / "checkpoints" / LATEST
        if not path.is_file():
            return False
        state = load_checkpoint(path, map_location=self.device)
        if state.get("hparams") != self.hparams:  # a differently shaped model: its state cannot be resumed
            if self.is_main:
                print(f"{path}: model settings changed since this checkpoint; training starts afresh")
            return False
        for name, module in self.modules.items():
            module.load_state_dict(state["modules"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.history = list(state["history"])
        return True

    def save(self) -> None:
        if self.is_main:
            save_checkpoint(self.out_dir / "checkpoints", self.state())
        if self.world > 1:
            dist.barrier()

    # ---------------------------------------------------------------- loops
    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """Batches from the current data position on, across epochs, forever."""
        while True:
            plan = epoch_batches(
                len(cast(Sized, self.train_set)),
                self.config.batch_size,
                self.config.seed,
                self.epoch,
                self.rank,
                self.world,
            )
            if not plan:
                raise ValueError("the training set is empty")
            # a private generator: building a loader must not draw from the global RNG (dropout's),
            # or a resumed run would diverge from an uninterrupted one
            loader = DataLoader(
                self.train_set,
                batch_sampler=plan[self.batch_in_epoch :],
                collate_fn=self.collate,
                num_workers=self.config.num_workers,
                generator=torch.Generator().manual_seed(self.config.seed + self.epoch),
            )
            for batch in loader:
                self.batch_in_epoch += 1
                yield {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            self.epoch += 1
            self.batch_in_epoch = 0

    def _set_mode(self, training: bool) -> None:
        for module in self.task.modules.values():
            module.train(training)

    def _log(self, split: str, metrics: dict[str, float]) -> None:
        row = {"step": self.step, "split": split, **{k: float(v) for k, v in metrics.items()}}
        self.history.append(row)
        if self.tracker is not None and self.is_main:
            self.tracker.log_metrics({f"{split}_{k}": float(v) for k, v in metrics.items()}, self.step)

    def validation_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """The validation set in order, in batches of the training batch size, on the device."""
        if self.val_set is None or len(cast(Sized, self.val_set)) == 0:
            return
        loader = DataLoader(
            self.val_set,
            batch_size=self.config.batch_size,
            shuffle=False,
            collate_fn=self.collate,
            generator=torch.Generator(),
        )
        for batch in loader:
            yield {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}

    @torch.no_grad()
    def validate(self, record: bool = True) -> dict[str, float]:
        """Mean validation losses; ``record``: also a row of the history (and examples in MLflow)."""
        if self.val_set is None or len(cast(Sized, self.val_set)) == 0:
            return {}
        self._set_mode(False)
        totals: dict[str, float] = {}
        count = 0
        first = None
        for batch in self.validation_batches():
            first = first if first is not None else batch
            with autocast(self.device, self.amp_dtype):
                losses = self.task.validation_step(batch)
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            count += 1
        metrics = {k: v / max(count, 1) for k, v in totals.items()}
        if self.world > 1:
            values = torch.tensor(list(metrics.values()), device=self.device, dtype=torch.float64)
            dist.all_reduce(values)
            metrics = dict(zip(metrics, (values / self.world).tolist()))
        if record:
            self._log("val", metrics)
        if record and self.tracker is not None and self.is_main and first is not None:
            self.tracker.log_examples(self.task.examples(first), self.step)
        self._set_mode(True)
        return metrics

    def fit(self) -> dict[str, float]:
        """Train until ``max_steps`` (continuing a resumed run); returns the last validation metrics."""
        config = self.config
        self._set_mode(True)
        context = StepContext(self)
        bar = tqdm(
            total=config.max_steps,
            initial=self.step,
            desc=f"train {', '.join(self.modules)}",
            unit="step",
            disable=not self.is_main,
        )
        running: dict[str, float] = {}
        batches = self._batches()
        last_val: dict[str, float] = {}
        while self.step < config.max_steps:
            batch = next(batches)
            losses = self.task.training_step(batch, context)
            for scheduler in self.schedulers.values():
                scheduler.step()
            self.step += 1
            for k, v in losses.items():
                running[k] = running.get(k, 0.0) + float(v)
            if self.step % config.log_every == 0 or self.step == config.max_steps:
                n = config.log_every if self.step % config.log_every == 0 else self.step % config.log_every
                means = {k: v / n for k, v in running.items()}
                means["lr"] = float(self.schedulers[next(iter(self.schedulers))].get_last_lr()[0])
                self._log("train", means)
                bar.set_postfix({k: f"{v:.4g}" for k, v in means.items()})
                running = {}
            if self.step % config.validate_every == 0 or self.step == config.max_steps:
                last_val = self.validate()
            if self.step % config.checkpoint_every == 0 or self.step == config.max_steps:
                self.save()
            bar.update(1)
        bar.close()
        if not last_val:  # resumed at its last step: its validation row is in the history already
            logged = any(row["split"] == "val" and row["step"] == self.step for row in self.history)
            last_val = self.validate(record=not logged)  # so a resumed run writes what the whole run wrote
        return last_val
