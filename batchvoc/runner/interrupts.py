"""Ctrl-C at a job's end: the summary and report are written whole, and a second Ctrl-C ends the process at once.

with EndGuard() as ending, hold_output(settings):
    ...                       # a Ctrl-C here raises KeyboardInterrupt as ever (the driver counts what was done)
    ending.begin()            # dealing over: from here a first Ctrl-C is noted, not raised into the writes
    ...                       # summary.json, report.html, Ray's shutdown
if ending.interrupted: ...    # the caller says so and raises it now

with second_interrupt_exits():   # an interrupted job's own summary and report
    ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any


def _exit_now(signum: int, frame: Any) -> None:
    """A second Ctrl-C while a job's end writes: the process ends at once (exit code 130; the guard ends a local
    Ray's processes, lifetime.py)."""
    os.write(2, b"\nbatchvoc: interrupted again: summary.json may not be written; the same command finishes "
                b"what is missing\n")  # fmt: skip
    os._exit(130)


@contextlib.contextmanager
def second_interrupt_exits() -> Iterator[None]:
    """While an interrupted job writes its summary and report: a second Ctrl-C ends the process at once
    (`_exit_now`), not with a KeyboardInterrupt raised into the writes, Ray's shutdown and the teardown after them.
    summary.json and report.html are written whole or not at all."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class EndGuard:
    """The job's normal end, from `begin` (dealing over, or nothing left to deal) to the context's exit (summary.json
    and report.html written, Ray shut down, output.dir released): a first Ctrl-C there is noted (`interrupted`)
    rather than raised into the writes, so the job's summary (a complete job's where every shard is done) is
    written all the same, and the caller raises it after; a second ends the process at once (`_exit_now`).

    Only where a Ctrl-C would raise KeyboardInterrupt (Python's own SIGINT handler, in the main thread); a
    program's own handler, or SIGINT ignored, is left as it is."""

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: Any = None

    def __enter__(self) -> EndGuard:
        return self

    def begin(self) -> None:
        """From now on a first Ctrl-C waits for the end; again: nothing more."""
        if self._previous is not None or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._first)

    def _first(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        signal.signal(signal.SIGINT, _exit_now)
        os.write(2, b"\nbatchvoc: interrupted at the job's end: summary.json and report.html are being written "
                    b"(Ctrl-C again ends it at once)\n")  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
