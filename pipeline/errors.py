"""Errors the pipeline reports to users as one line (no traceback)."""

from __future__ import annotations

from pathlib import Path


class PipelineError(Exception):
    """A problem with an input the user can fix: the message names the file and the fault."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)
