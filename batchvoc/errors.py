"""The kinds of failure batchvoc tells apart: bad configuration (stop before any work), a job that could not start
its workers, and a bad row; and how a message words things: a setting (Keys: the job's keys or the Python API's
keywords), a count (counted: `1 row`, `2 rows`), a duration (duration: `7.2 s`, `2.25 h`); and a command whose
reader stopped reading (`reader_gone`)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass


def first_line(err: BaseException) -> str:
    """The first non-empty line of an error's message, stripped (its type's name where it has none): one line of
    it for a message that must stay on one line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`1 row`, `2 rows`, `0 rows`: a count and its noun, singular for exactly one (a console line never says
    `1 rows`); plural: where adding an s is not it (`1 match`, `2 matches`)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def duration(seconds: float | None) -> str:
    """A duration as a message says it, in the unit that shows it: `2.25 h`, `12.5 min`, `25.0 s`, `0.96 s`
    (`–` for None)."""
    if seconds is None:
        return "–"
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds:.2f} s"


@dataclass(frozen=True)
class Keys:
    """How a reason, hint or log line names a setting: as a job's keys (`input.mel_scale=db`,
    `model.checkpoint=random`) or as the Python API's keywords (`mel_scale="db"`, `checkpoint="random"`,
    batchvoc.api.Vocoder.from_preset), so that it names what its caller set."""

    scale: str = "input.mel_scale"
    mode: str = "check.mel_convention"
    checkpoint: str = "model.checkpoint"
    backend: str = "engine.backend"
    quoted: bool = False  # keyword arguments: values quoted, as Python strings

    def set(self, setting: str, value: str) -> str:
        """`engine.backend=inductor` or `backend="inductor"`; setting: one of the fields above (`backend`)."""
        name = getattr(self, setting)
        return f'{name}="{value}"' if self.quoted else f"{name}={value}"

    def set_scale(self, *values: str) -> str:
        """`input.mel_scale=log10|db` or `mel_scale="log10" | "db"`."""
        if self.quoted:
            return f"{self.scale}=" + " | ".join(f'"{v}"' for v in values)
        return f"{self.scale}=" + "|".join(values)


JOB_KEYS = Keys()
API_KEYS = Keys("mel_scale", "mel_convention", "checkpoint", "backend", quoted=True)


class ConfigError(Exception):
    """Bad configuration: the job stops before any work, naming the key to change. `key` is the job's key;
    `shown`, where given, is what the text calls it instead (the Python API's keyword: batchvoc.api)."""

    def __init__(self, key: str, message: str, shown: str | None = None):
        super().__init__(f"{shown or key}: {message}")
        self.key = key
        self.message = message
        self.shown = shown

    def __reduce__(self):  # pickled whole: an actor's ConfigError reaches the driver through Ray as itself
        return type(self), (self.key, self.message, self.shown)


class StartError(Exception):
    """No worker could start its engine (a CUDA fault, memory, a compiler's failure): the job stops in one line
    with the first worker's error; `cause` holds that error as raised (Ray's, with the worker's traceback), logged
    in full."""

    def __init__(self, message: str, cause: BaseException):
        super().__init__(message)
        self.cause = cause


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a batch scheduler's stop or preemption), raised in the main thread where Python
    would raise KeyboardInterrupt for a Ctrl-C (runner/interrupts.terminate_as_interrupt): a job handles it as a
    Ctrl-C (summary.json and report.html say what was done, a second one ends the process at once) and exits 143.
    `received`: a SIGTERM came, whatever became of its exception (Ray's wait for a result raises a KeyboardInterrupt
    of its own in its place)."""

    received = False


class InterruptedWhenDone(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a job's end, after its every shard was done: the job is complete (its summary.json
    says so), and the process still exits as for any Ctrl-C (SIGTERM). `report`: the job's
    (runner/driver.JobReport), for its closing lines."""

    def __init__(self, report: object = None) -> None:
        super().__init__()
        self.report = report


def interrupted_by() -> tuple[str, int]:
    """What stopped the process, and its exit code, once a KeyboardInterrupt came: ("SIGTERM", 143) where a SIGTERM
    was received (Terminated.received), else ("Ctrl-C", 130): 128 + the signal's number, as a shell reports a
    process the signal ended."""
    if Terminated.received:
        return "SIGTERM", 128 + signal.SIGTERM
    return "Ctrl-C", 128 + signal.SIGINT


class RowError(ValueError):
    """One bad input row: it becomes a status=error row with this one-line reason; other rows go on."""


def reader_gone(main: Callable[..., int], *args, **kwargs) -> int:
    """main(*args, **kwargs)'s exit code; 1, quietly, where the reader of stdout stopped reading (`... | head -1`):
    Python ignores SIGPIPE, so the next write raised BrokenPipeError, a traceback for output nobody asked for.
    stdout is pointed at os.devnull so that the interpreter's own flush at exit does not raise again (Python's
    signal docs, "Note on SIGPIPE")."""
    try:
        return main(*args, **kwargs)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
