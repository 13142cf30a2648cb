"""Dispatch ``data.source`` to its reader; every reader writes the layout of ``layout.py``."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import DataConfig
from pipeline.datasets.layout import Recording


def prepare_source(config: DataConfig, out: Path) -> list[Recording]:
    if config.source == "builtin":
        from pipeline.datasets.builtin import prepare_builtin

        return prepare_builtin(config.builtin, out, seed=config.seed)
    if config.source == "bach-violin":
        from pipeline.datasets.bach_violin import prepare_bach_violin

        return prepare_bach_violin(config, out)
    from pipeline.datasets.maestro import prepare_maestro

    return prepare_maestro(config, out)
