"""Atomic checkpoints: a run killed at any moment leaves the last complete checkpoint intact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.models.persistence import read_weights, write_weights

LATEST = "latest.pt"


def save_checkpoint(directory: str | Path, state: dict[str, Any]) -> Path:
    path = Path(directory) / LATEST
    write_weights(path, state)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A training checkpoint (``path`` or ``path``/latest.pt), loaded with ``weights_only=True``."""
    path = Path(path)
    return read_weights(path / LATEST if path.is_dir() else path, map_location)
