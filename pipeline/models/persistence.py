"""Model files: ``model.pt`` = ``{"hparams": constructor keyword arguments, "state_dict": weights}``.

Every model of the project rebuilds from its ``hparams`` (``cls(**hparams)``, or a factory such as
:func:`pipeline.models.vocoders.build_vocoder` that reads a ``kind`` among them); training writes
these files, inference and evaluation read them. Loading never unpickles code (``weights_only``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from pipeline.errors import PipelineError
from pipeline.io import atomic_path

M = TypeVar("M", bound=torch.nn.Module)


def read_weights(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``: the file may hold tensors, numbers and strings only."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError("checkpoint not found", path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle errors, truncated zip, unsafe content
        raise PipelineError(f"not a readable checkpoint ({type(err).__name__}: {err})", path) from err


def save_model(path: str | Path, model: torch.nn.Module, hparams: dict[str, Any]) -> None:
    """Write ``model``'s weights and the ``hparams`` that rebuild it, atomically."""
    write_weights(path, {"hparams": hparams, "state_dict": model.state_dict()})


def write_weights(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save(state)`` to ``path`` atomically, the same bytes for the same ``state``.

    ``torch.save`` given a file *name* names the zip's root folder after it, and the temporary name
    of :func:`pipeline.io.atomic_path` is random: the bytes would differ run to run. Given an open
    file, the root folder is always ``archive``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(state, handle)


def load_model(path: str | Path, cls: Callable[..., M]) -> M:
    """Rebuild ``cls(**hparams)`` from a file written by :func:`save_model`, in eval mode."""
    state = read_weights(path)
    model = cls(**state["hparams"])
    model.load_state_dict(state["state_dict"])
    return model.eval()
