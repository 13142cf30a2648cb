"""Learning-rate schedules of the paper (Table 6) and of HiFi-GAN, as LambdaLR multipliers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch


def transformer_schedule(
    d_model: int, warmup: int, anneal_steps: Sequence[int] = (), anneal_rate: float = 0.5
) -> Callable[[int], float]:
    """``d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)``, halved at each of ``anneal_steps``.

    Returned as a multiplier of the optimiser's base lr (use base lr 1.0 for the paper's rule).
    """

    def factor(step: int) -> float:
        step = max(step, 1)
        value = d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
        for boundary in anneal_steps:
            if step > boundary:
                value *= anneal_rate
        return value

    return factor


def exponential_schedule(decay_per_epoch: float, steps_per_epoch: int) -> Callable[[int], float]:
    """HiFi-GAN's ``gamma ** epoch`` stepped smoothly every step."""
    rate = decay_per_epoch ** (1.0 / max(1, steps_per_epoch))
    return lambda step: rate**step


def adam_with_transformer_schedule(model: torch.nn.Module, config) -> tuple[torch.optim.Adam, Callable[[int], float]]:
    """The alignment and synthesis models' optimiser (Table 6) and its LR rule.

    ``config`` is a :class:`pipeline.config.TransformerOptimizerConfig`; ``model.hparams`` holds ``d_model``.
    """
    adam = torch.optim.Adam(model.parameters(), lr=config.lr, betas=adam_betas(config.betas), eps=config.eps)
    hparams = cast(dict[str, Any], model.hparams)  # an attribute of the model class, not a buffer or submodule
    return adam, transformer_schedule(hparams["d_model"], config.warmup, config.anneal_steps, config.anneal_rate)


def adam_betas(betas: Sequence[float]) -> tuple[float, float]:
    """``betas`` of the params (a list in params.yaml) as the pair Adam's betas are."""
    beta1, beta2 = betas
    return beta1, beta2
