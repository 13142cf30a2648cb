"""Shared entry-point plumbing for the stage scripts: params loading and one-line errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from pipeline.config import load_params
from pipeline.errors import PipelineError


def stage_main(run: Callable[..., None], description: str, options: dict[str, str] | None = None) -> None:
    """Parse ``--params`` (and ``--<option>`` for each of ``options``: name -> help, passed to
    ``run`` as keyword arguments), run the stage, turn a PipelineError into ``error: ...`` and exit 1."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    for name, help_text in (options or {}).items():
        parser.add_argument(f"--{name}", default=None, help=help_text)
    args = parser.parse_args()
    extra = {name: getattr(args, name) for name in (options or {})}
    try:
        run(load_params(args.params), **extra)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted; finished outputs are kept, re-run to continue", file=sys.stderr)
        sys.exit(130)
