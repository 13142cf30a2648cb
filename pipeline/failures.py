"""The one place where a failure becomes what the user sees: ``error: <file or key>: <what is wrong>``.

Every command (:func:`pipeline.cli.main`) and every stage script (``stages/_common.py``) runs inside
:func:`reported_failures`:

* a :class:`~pipeline.errors.PipelineError` (a fault the user can fix) or an ``OSError`` (a folder
  that is not writable, a name too long...) is one line and exit status 1;
* Ctrl-C is exit status 130 and SIGTERM (what ``timeout``, ``docker stop`` and Prefect's cancellation
  send) exit status 143, both *after* the clean-up: SIGTERM is turned into an exception in the main
  thread, so every ``finally`` (the temporaries of :mod:`pipeline.io`) runs before the exit;
* anything else is a bug: one line naming the exception, and the traceback only with ``--debug`` or
  ``PERFORMER_DEBUG=1`` (which also print the traceback of the expected failures);
* a warning is one line, ``warning: <what>``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator
from types import FrameType

from pipeline.errors import PipelineError

DEBUG_ENV = "PERFORMER_DEBUG"
EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 130, 143


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread so that clean-up runs (a BaseException, like Ctrl-C's,
    so that ``except Exception`` blocks do not swallow it)."""


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def take_debug_flag(argv: list[str]) -> list[str]:
    """``argv`` without ``--debug``; its presence sets PERFORMER_DEBUG=1 (for this process and its children)."""
    if "--debug" in argv:
        os.environ[DEBUG_ENV] = "1"
    return [a for a in argv if a != "--debug"]


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {_one_line(str(message))}\n"


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def describe(err: BaseException) -> str:
    """The user's line for ``err`` (without ``error: ``)."""
    if isinstance(err, PipelineError):
        return _one_line(str(err))
    if isinstance(err, OSError):
        where = err.filename if err.filename is not None else ""
        what = err.strerror or _one_line(str(err)) or type(err).__name__
        return f"{where}: {what}" if where else what
    hint = f"run with --debug or {DEBUG_ENV}=1 for the traceback"
    return f"unexpected {type(err).__name__}: {_one_line(str(err))} ({hint})"


def report(err: BaseException) -> None:
    """Print ``err`` as the user's line (and its traceback with --debug), for callers that exit themselves."""
    if debugging():
        traceback.print_exception(err)
    print(f"error: {describe(err)}", file=sys.stderr, flush=True)


def _fail(line: str, code: int) -> None:
    if debugging():
        traceback.print_exc()
    print(f"error: {line}", file=sys.stderr, flush=True)
    sys.exit(code)


@contextlib.contextmanager
def reported_failures() -> Iterator[None]:
    """Run a command or stage: every failure ends as one line and its exit status (module docstring)."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    if not debugging():  # a warning is one line too: "warning: <what>", not Python's two-line format
        warnings.formatwarning = _one_line_warning
    try:
        yield
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _fail("interrupted; finished outputs are kept, nothing half-written is left", EXIT_INTERRUPTED)
    except Terminated:
        _fail("terminated (SIGTERM); finished outputs are kept, nothing half-written is left", EXIT_TERMINATED)
    except Exception as err:  # noqa: BLE001 (the one place every failure is reported)
        _fail(describe(err), EXIT_FAILURE)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
