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
from pipeline.failures import reported_failures, take_debug_flag


def stage_main(
    run: Callable[..., None],
    description: str | None,
    paths: dict[str, str],
    options: dict[str, str] | None = None,
) -> None:
    """Parse ``--params`` (repeatable: a base file, then overlays), the stage's ``paths`` (name -> help; each a required ``--name PATH``, passed to
    ``run`` as a keyword argument of type Path, dashes as underscores) and its ``options`` (name -> help,
    optional strings) and run the stage inside pipeline.failures.reported_failures: a failure is one line
    ``error: <file or key>: <what>`` and exit status 1 (130 on Ctrl-C, 143 on SIGTERM)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--params",
        action="append",
        metavar="FILE",
        help="parameter file (default: params.yaml); repeated: each later file is an overlay holding only what "
        "differs (a second job's: jobs/<name>/dvc.yaml passes ../../params.yaml, then its own params.yaml)",
    )
    parser.add_argument("--debug", action="store_true", help="print the traceback of a failure (or PERFORMER_DEBUG=1)")
    for name, help_text in paths.items():
        parser.add_argument(f"--{name}", type=Path, required=True, metavar="PATH", help=help_text)
    for name, help_text in (options or {}).items():
        parser.add_argument(f"--{name}", default=None, help=help_text)
    args = vars(parser.parse_args(take_debug_flag(sys.argv[1:])))
    args.pop("debug")
    params_files = args.pop("params") or ["params.yaml"]
    with reported_failures():  # one line per failure; 130 on Ctrl-C, 143 on SIGTERM after clean-up
        run(load_params(*params_files), **args)
