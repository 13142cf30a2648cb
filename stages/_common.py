"""Shared entry-point plumbing for the stage scripts: params, the stage's paths, one-line errors.

Every path a stage reads or writes is named once, in its ``cmd`` in dvc.yaml (beside its ``deps`` and
``outs``): the scripts take them as required options and hold no path of their own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.config import load_params
from pipeline.errors import PipelineError


def stage_main(
    run: Callable[..., None],
    description: str | None,
    paths: dict[str, str],
    options: dict[str, str] | None = None,
) -> None:
    """Parse ``--params``, the stage's ``paths`` (name -> help; each a required ``--name PATH``, passed to
    ``run`` as a keyword argument of type Path, dashes as underscores) and its ``options`` (name -> help,
    optional strings), run the stage, turn a PipelineError into ``error: ...`` and exit 1."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    for name, help_text in paths.items():
        parser.add_argument(f"--{name}", type=Path, required=True, metavar="PATH", help=help_text)
    for name, help_text in (options or {}).items():
        parser.add_argument(f"--{name}", default=None, help=help_text)
    args = vars(parser.parse_args())
    params_file = args.pop("params")
    try:
        run(load_params(params_file), **args)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted; finished outputs are kept, re-run to continue", file=sys.stderr)
        sys.exit(130)
