"""Dispatch ``data.source`` to its reader; every reader writes the layout of ``layout.py``."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import DataConfig
from pipeline.datasets.layout import Recording
from pipeline.errors import PipelineError


def prepare_source(config: DataConfig, out: Path) -> list[Recording]:
    """The recordings of ``config.source`` written into ``out``; a source that yields none is an error
    naming the setting (the caller writes into a temporary folder, so the old corpus stays)."""
    recordings = _prepare(config, out)
    if not recordings:
        raise PipelineError(
            f"data.source {config.source!r} gives no recordings with these settings (params data.{SETTINGS[config.source]})"
        )
    return recordings


# the settings that select a source's recordings (named when they select none)
SETTINGS = {
    "builtin": "builtin.performers / violin_pieces / chorale_pieces",
    "bach-violin": "bach_violin.collections / max_movements",
    "maestro": "maestro.splits / max_recordings",
    "folder": "root",
}


def _prepare(config: DataConfig, out: Path) -> list[Recording]:
    if config.source == "builtin":
        from pipeline.datasets.builtin import prepare_builtin

        return prepare_builtin(config.builtin, out, seed=config.seed)
    if config.source == "folder":
        from pipeline.datasets.folder import prepare_folder

        return prepare_folder(config.root, out)
    if config.source == "bach-violin":
        from pipeline.datasets.bach_violin import prepare_bach_violin

        return prepare_bach_violin(config, out)
    from pipeline.datasets.maestro import prepare_maestro

    return prepare_maestro(config, out)
