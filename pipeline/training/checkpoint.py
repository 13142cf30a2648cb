"""Atomic checkpoints: a run killed at any moment leaves the last complete checkpoint intact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.errors import PipelineError
from pipeline.io import atomic_path

LATEST = "latest.pt"


def save_checkpoint(directory: str | Path, state: dict[str, Any]) -> Path:
    path = Path(directory) / LATEST
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``: checkpoints hold tensors, numbers and strings only."""
    path = Path(path)
    if path.is_dir():
        path = path / LATEST
    if not path.is_file():
        raise PipelineError("checkpoint not found", path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle errors, truncated zip, unsafe content
        raise PipelineError(f"not a readable checkpoint ({type(err).__name__}: {err})", path) from err
