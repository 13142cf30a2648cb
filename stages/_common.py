"""Shared entry-point plumbing for the stage scripts: params loading and one-line errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from pipeline.config import Params, load_params
from pipeline.errors import PipelineError


def stage_main(run: Callable[[Params], None], description: str) -> None:
    """Parse ``--params``, run the stage, turn a PipelineError into ``error: ...`` and exit 1."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    args = parser.parse_args()
    try:
        run(load_params(args.params))
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted; finished outputs are kept, re-run to continue", file=sys.stderr)
        sys.exit(130)
