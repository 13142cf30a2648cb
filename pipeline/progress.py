"""Progress of a long command on stderr, with an ETA: a bar on a terminal, a few plain lines in a log.

:func:`progress_bar` is a tqdm bar that is never disabled, only quiet while the work is short:

* stderr a terminal: redrawn in place (at most twice a second), shown once the work has run for
  ``TTY_DELAY`` seconds;
* stderr a file or a pipe (a log, CI, a test): no carriage-return redraws but whole lines, at most one
  every ``LOG_INTERVAL`` seconds *and* one per tenth of the work, plus the last. So work shorter than
  ``LOG_INTERVAL`` prints nothing and a long one about ten lines: ``render: 40% 960/2400 s of audio,
  elapsed 05:12, ETA 07:48``.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # imported when a bar is made: 20 ms that `performer render --help` and others need not pay
    from tqdm import tqdm

TTY_DELAY = 1.0  # seconds before a bar appears on a terminal
LOG_INTERVAL = 30.0  # seconds between two lines when stderr is not a terminal


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into whole lines (repeats dropped)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> None:
        for line in text.replace("\r", "\n").split("\n"):
            line = line.rstrip()
            if line and line != self.last:
                self.stream.write(line + "\n")
                self.last = line

    def flush(self) -> None:
        self.stream.flush()


def _sized(stream: TextIO) -> bool:
    """Whether the terminal tells its size (a pseudo-terminal may say 0 x 0, and tqdm then draws nothing)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return size.columns > 0 and size.lines > 0


def progress_bar(
    total: float,
    desc: str,
    unit: str = "",
    *,
    stream: TextIO | None = None,
    log_interval: float = LOG_INTERVAL,
    tty_delay: float = TTY_DELAY,
    disable: bool = False,
) -> tqdm:
    """A tqdm bar for ``total`` units of work (``bar.update(n)`` as it is done; use it as a context manager).

    ``unit``: what is counted, shown after the count (``"s of audio"``, ``"windows"``); ``stream``:
    where it goes (default ``sys.stderr``, looked up at the call, so a test's capture applies);
    ``disable``: no bar at all (for a caller that shows progress only when asked).
    """
    from tqdm import tqdm

    stream = sys.stderr if stream is None else stream
    counted = f" {unit}" if unit else ""
    tty = bool(getattr(stream, "isatty", lambda: False)())
    if tty or disable:
        return tqdm(
            total=total,
            desc=desc,
            disable=disable,
            file=stream,
            mininterval=0.5,
            delay=tty_delay,
            **({} if _sized(stream) else {"ncols": 80, "nrows": 24}),  # a terminal that says it is 0 x 0 gets no bar
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f}" + counted + " [{elapsed}<{remaining}]",
        )
    return tqdm(
        total=total,
        desc=desc,
        file=_Lines(stream),  # a file as tqdm uses one: write and flush
        mininterval=log_interval,
        miniters=total / 10,
        maxinterval=float("inf"),  # else tqdm's monitor thread prints between the tenths
        delay=log_interval,
        bar_format="{desc}: {percentage:3.0f}% {n:.0f}/{total:.0f}" + counted + ", elapsed {elapsed}, ETA {remaining}",
    )
