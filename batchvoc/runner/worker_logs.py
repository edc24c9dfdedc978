"""Worker log lines through the driver's logging.

Ray forwards what its workers write on stdout and stderr to the driver (`ray.init(log_to_driver=True)`): a thread
of the driver polls the lines and its dispatcher hands them to a printer ("ray_print_logs") that prints each one,
prefixed `(Worker pid=N)`, straight onto sys.stdout / sys.stderr. So an actor's warning (`fp16 on CPU runs in
fp32`) landed on the progress bar's line and never reached the job's batchvoc.log. `route()` puts a printer of
batchvoc's own in its place, under Ray's name: each line is logged to the `batchvoc.worker` logger (WARNING for a
worker's stderr, where its warnings and tracebacks go; INFO for its stdout), so it goes where the driver's own
lines go: above the bar (tqdm's logging_redirect_tqdm) and into batchvoc.log. Ray's own formatting is kept: its
prefix naming the actor and pid, its deduplication of a line many workers repeat (`[repeated 3x across
cluster]`, whose last counts `flush()` logs before Ray shuts down).

An actor's own records (the `batchvoc` loggers') keep their level: `from_actor(level)`, called as the actor starts,
writes each one as a line `[logger][LEVEL] - message` (the console's format, less the time), and the driver logs a
line so marked at that level. So an actor's info line (`aoti: building ...`, `engine: auto: ...`) reaches the
console and batchvoc.log at INFO, at the job's log_level, as the driver's own lines do; before, an actor's logging
had no handler but Python's last resort (WARNING and up, bare), and lines meant for the console were raised to
WARNING to get there. Lines without the mark (Python's warnings, tracebacks, other libraries' output) keep the
stream's level. A forwarded line is stamped when the driver receives it: 35-90 ms after the actor wrote it (20
lines of an idle local Ray, median 61 ms).

A Ray client (ray://) receives worker lines another way (Ray's client log stream): there Ray prints them (marked
lines read `(ActorWorker pid=N) [batchvoc.engines.aoti][INFO] - aoti: building ...`).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from typing import Any

log = logging.getLogger("batchvoc.worker")

PRINTER = "ray_print_logs"  # Ray's name for its printer: ray.shutdown() removes ours as it would remove its own
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Ray's words for the end of actors and tasks that batchvoc stops itself (an early stop's ray.kill of its actors,
# Ctrl-C): "Task ActorWorker.run failed. There are 3 retries remaining ... killed by `ray.kill`" read as a crash on
# a new user's console. Logged at DEBUG (batchvoc.log at log_level=DEBUG), not on the console.
OWN_STOP = re.compile(r"killed by `ray\.kill`|Failed to push error to driver")
ACTOR_FORMAT = "[%(name)s][%(levelname)s] - %(message)s"  # an actor's batchvoc records, one line each (from_actor)
# such a line as Ray hands it over: its `(ActorWorker pid=N) ` prefix (none where Ray is told to drop it), the mark
MARKED = re.compile(r"^(?P<prefix>\([^)]*\) )?\[batchvoc(?:\.[\w.]+)?\]"
                    r"\[(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\] - ")  # fmt: skip


class _Lines:
    """A text stream that logs each whole line written to it at `level` (colour codes dropped)."""

    def __init__(self, level: int) -> None:
        self.level = level
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
        for line in lines:
            line = ANSI.sub("", line).rstrip()
            if line:
                log.log(*_level_and_line(line, self.level))
        return len(text)

    def flush(self) -> None:
        pass


def _level_and_line(line: str, level: int) -> tuple[int, str, str]:
    """(level, "%s", text) to log a worker's line with: a marked line's own level, its mark dropped; Ray's words
    for batchvoc's own stops at DEBUG (OWN_STOP); any other line at its stream's `level`."""
    marked = MARKED.match(line)
    if marked:
        return logging.getLevelName(marked["level"]), "%s", (marked["prefix"] or "") + line[marked.end() :]
    return (logging.DEBUG if OWN_STOP.search(line) else level), "%s", line


def from_actor(level: int) -> None:
    """In an actor's process: its `batchvoc` records at `level` and up go to stderr, one marked line each
    (ACTOR_FORMAT), which the driver logs at their own level (module doc). Called again, only the level changes."""
    logger = logging.getLogger("batchvoc")
    logger.setLevel(level)
    if any(getattr(handler, "batchvoc_actor", False) for handler in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(ACTOR_FORMAT))
    handler.batchvoc_actor = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False  # one line per record: not also the root's handlers, where Ray or a library set some


_STDOUT, _STDERR = _Lines(logging.INFO), _Lines(logging.WARNING)
_settings: dict[str, bool] = {"ignore_prefix": False}  # Ray's choice for this job (a job's logging config drops it)


def _ray_worker() -> Any:
    """Ray's driver-side worker module (the dispatcher, deduplicators and line printer live there), or None."""
    try:
        from ray._private import worker
    except ImportError:
        return None
    needed = ("global_worker_stdstream_dispatcher", "stdout_deduplicator", "stderr_deduplicator", "print_worker_logs")
    return worker if all(hasattr(worker, name) for name in needed) else None


def route() -> bool:
    """Replace Ray's printer of worker lines with one that logs them (module doc); True where it did or had. A
    no-op (False) where Ray forwards no worker lines to this process (log_to_driver=False, a Ray client) or its
    internals are not as expected (Ray's printer is then left as it is)."""
    worker = _ray_worker()
    if worker is None:
        return False
    dispatcher = worker.global_worker_stdstream_dispatcher
    printers = dict(dispatcher.handlers)
    if PRINTER not in printers:
        return False
    if printers[PRINTER] is _log_batch:
        return True
    _settings["ignore_prefix"] = worker._should_ignore_worker_log_prefix(worker.global_worker)  # as Ray's printer
    dispatcher.remove_handler(PRINTER)
    dispatcher.add_handler(PRINTER, _log_batch)
    return True


def _log_batch(data: dict[str, Any]) -> None:
    """Ray's print_to_stdstream, logging instead of printing: the batch deduplicated as Ray does (not the
    autoscaler's), each line with Ray's prefix."""
    worker = _ray_worker()
    err = bool(data.get("is_err"))
    dedup = worker.stderr_deduplicator if err else worker.stdout_deduplicator
    batches = dedup.deduplicate(data) if data.get("pid") not in ("autoscaler",) else [data]
    for batch in batches:
        worker.print_worker_logs(batch, _STDERR if err else _STDOUT, _settings["ignore_prefix"])


def flush() -> None:
    """Log the repeated lines Ray's deduplicators still hold (call before ray.shutdown, which would print them)."""
    worker = _ray_worker()
    if worker is None or dict(worker.global_worker_stdstream_dispatcher.handlers).get(PRINTER) is not _log_batch:
        return
    for dedup, stream in ((worker.stdout_deduplicator, _STDOUT), (worker.stderr_deduplicator, _STDERR)):
        for leftover in dedup.flush():
            worker.print_worker_logs(leftover, stream, _settings["ignore_prefix"])
