"""Ctrl-C and SIGTERM during a job: its summary and report are written whole, and a second signal ends the process
at once.

terminate_as_interrupt()      # main thread: SIGTERM raises errors.Terminated (a KeyboardInterrupt) as Ctrl-C raises
with EndGuard() as ending, hold_output(settings):
    ...                       # a Ctrl-C here raises KeyboardInterrupt as ever (the driver counts what was done)
    ending.begin()            # dealing over: from here a first Ctrl-C is noted, not raised into the writes
    ...                       # summary.json, report.html, Ray's shutdown
if ending.interrupted: ...    # the caller says so and raises it now (errors.interrupted_by: which signal)

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

from batchvoc.errors import Terminated

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _terminated(signum: int, frame: Any) -> None:
    Terminated.received = True
    raise Terminated


def terminate_as_interrupt() -> None:
    """SIGTERM raises errors.Terminated in the main thread from now on, as SIGINT raises KeyboardInterrupt, so a job
    ended by `kill`, `timeout` or a batch scheduler writes its summary and report as on Ctrl-C. Replaces Python's
    default and Ray's (ray.init's sys.exit, and the crash report Ray's core worker prints from C++: installed
    again after Ray connects); a program's own handler, or SIGTERM ignored, is left as it is. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current in (signal.SIG_DFL, _terminated) or getattr(current, "__module__", "").startswith("ray."):
        signal.signal(signal.SIGTERM, _terminated)


def _exit_now(signum: int, frame: Any) -> None:
    """A second Ctrl-C or SIGTERM while a job's end writes: the process ends at once (exit code 128 + the signal's
    number: 130, 143; the guard ends a local Ray's processes, lifetime.py)."""
    os.write(2, b"\nbatchvoc: interrupted again: summary.json may not be written; the same command finishes "
                b"what is missing\n")  # fmt: skip
    os._exit(128 + signum)


def _ours(signum: int) -> bool:
    """Whether signum raises here as this module arranges it (Python's SIGINT handler, terminate_as_interrupt's)."""
    return signal.getsignal(signum) in (signal.default_int_handler, _terminated)


@contextlib.contextmanager
def second_interrupt_exits() -> Iterator[None]:
    """While an interrupted job writes its summary and report: a second Ctrl-C or SIGTERM ends the process at once
    (`_exit_now`), not with a KeyboardInterrupt raised into the writes, Ray's shutdown and the teardown after them.
    summary.json and report.html are written whole or not at all."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _exit_now) for s in STOP_SIGNALS if _ours(s)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class EndGuard:
    """The job's normal end, from `begin` (dealing over, or nothing left to deal) to the context's exit (summary.json
    and report.html written, Ray shut down, output.dir released): a first Ctrl-C or SIGTERM there is noted
    (`interrupted`; a SIGTERM in Terminated.received) rather than raised into the writes, so the job's summary (a
    complete job's where every shard is done) is written all the same, and the caller raises it after; a second
    ends the process at once (`_exit_now`).

    Only where the signal would raise here (Python's own SIGINT handler, terminate_as_interrupt's SIGTERM one, in
    the main thread); a program's own handler, or the signal ignored, is left as it is."""

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> EndGuard:
        return self

    def begin(self) -> None:
        """From now on a first Ctrl-C (SIGTERM) waits for the end; again: nothing more."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        self._previous = {s: signal.signal(s, self._first) for s in STOP_SIGNALS if _ours(s)}

    def _first(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        Terminated.received |= signum == signal.SIGTERM
        for s in self._previous:
            signal.signal(s, _exit_now)
        again = b"Ctrl-C again" if signum == signal.SIGINT else b"another SIGTERM or a Ctrl-C"
        os.write(2, b"\nbatchvoc: interrupted at the job's end: summary.json and report.html are being written "
                    b"(" + again + b" ends it at once)\n")  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
