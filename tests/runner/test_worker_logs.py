"""batchvoc/runner/worker_logs.py: the lines Ray forwards from the workers go through the driver's logging."""

from __future__ import annotations

import functools
import logging

import pytest

from batchvoc.runner import worker_logs
from batchvoc.runner.dealer import progress_bar

LINE = "fp16 on CPU runs in fp32 (CPU fp16 convolutions are slow emulation); use bf16 for a CPU speedup"


@pytest.fixture
def rays_printer():
    """Ray's printer of worker lines in its dispatcher, as ray.init(log_to_driver=True) adds it (and its
    ray.shutdown() removes it)."""
    from ray._private import worker

    dispatcher = worker.global_worker_stdstream_dispatcher
    dispatcher.add_handler(worker_logs.PRINTER, functools.partial(worker.print_to_stdstream, ignore_prefix=False))
    yield dispatcher
    dispatcher.remove_handler(worker_logs.PRINTER)


def _batch(line: str, pid: int, is_err: bool = True) -> dict:
    """A batch of worker lines as Ray's log subscriber hands it to the dispatcher."""
    return {"ip": "10.0.0.1", "localhost": "10.0.0.1", "pid": pid, "job": "01000000", "is_err": is_err,
            "lines": [line], "actor_name": "ActorWorker", "task_name": ""}  # fmt: skip


def test_worker_lines_are_logged_above_the_bar_not_printed_onto_it(rays_printer, caplog, capsys):
    """An actor's warning came through Ray's printer onto the progress bar's line (stderr) and missed batchvoc.log;
    routed, it is a record of the batchvoc.worker logger (WARNING from a worker's stderr, INFO from its stdout), with
    Ray's prefix naming the actor, and Ray prints no copy of its own."""
    assert worker_logs.route() and worker_logs.route()  # once, then found in place
    assert [name for name, _ in rays_printer.handlers].count(worker_logs.PRINTER) == 1
    caplog.set_level(logging.INFO, logger="batchvoc.worker")
    with progress_bar(10.0):
        rays_printer.emit(_batch(LINE, 4242))
        rays_printer.emit(_batch("a line on the worker's stdout", 4243, is_err=False))
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "batchvoc.worker"]
    records = [r for r in records if "pid=4242)" in r[1] or "pid=4243)" in r[1]]  # not the suite's actors' lines
    assert records == [(logging.WARNING, f"(ActorWorker pid=4242) {LINE}"),
                       (logging.INFO, "(ActorWorker pid=4243) a line on the worker's stdout")]  # fmt: skip
    printed = capsys.readouterr()  # what logging's console handlers wrote (through tqdm.write), not Ray's print too
    assert (printed.out + printed.err).count("pid=4242) fp16 on CPU") <= 1


def test_without_rays_printer_nothing_is_routed():
    """log_to_driver=False (or a Ray client): Ray forwards no lines here, and route leaves the dispatcher alone."""
    from ray._private import worker

    before = list(worker.global_worker_stdstream_dispatcher.handlers)
    assert not worker_logs.route()
    assert worker.global_worker_stdstream_dispatcher.handlers == before


def test_rays_words_for_a_stop_batchvoc_made_are_not_on_the_console(rays_printer, caplog):
    """An early stop kills the job's actors (ray.kill) with shards in flight, and Ray's raylet said so on the console
    as a crash and retry (a new user's report): such lines, and Ctrl-C's 'Failed to push error to driver', are
    logged at DEBUG; other lines from the raylet keep their level."""
    assert worker_logs.route()
    caplog.set_level(logging.DEBUG, logger="batchvoc.worker")
    killed = ("Task ActorWorker.run failed. There are 3 retries remaining, so the task will be retried. Error: The "
              "actor is dead because it was killed by `ray.kill`.")  # fmt: skip
    pushed = "task_manager.cc:1545: Failed to push error to driver for task 18cf"
    other = "file_system_monitor.cc:116: /tmp/ray is over 95% full"
    for line, pid in ((killed, 5151), (pushed, 5152), (other, 5153)):
        rays_printer.emit(_batch(line, pid))
    levels = {r.getMessage(): r.levelno for r in caplog.records if r.name == "batchvoc.worker"}
    assert [levels[m] for m in levels if "pid=5151)" in m or "pid=5152)" in m] == [logging.DEBUG, logging.DEBUG]
    assert [levels[m] for m in levels if "pid=5153)" in m] == [logging.WARNING]


def test_an_actors_own_records_reach_the_console_at_their_own_level(rays_printer, caplog, capsys):
    """An aoti job's package build was announced at WARNING only so that the actor's line would reach the console:
    an actor's logging had no handler but Python's last resort (WARNING and up, bare), so its info lines (`engine:
    auto: ...`, `aoti: building ...`) were lost. from_actor writes the actor's batchvoc records from the job's
    level, each marked with its logger and level; the driver logs a marked line at that level, its mark dropped,
    and an unmarked one at its stream's level as before."""
    logger = logging.getLogger("batchvoc")
    saved = logger.level, list(logger.handlers), logger.propagate
    try:
        worker_logs.from_actor(logging.INFO)
        worker_logs.from_actor(logging.INFO)  # called again (a restarted actor's constructor): still one handler
        logging.getLogger("batchvoc.engines.aoti").info("aoti: building x.pt2, once per machine and key")
        logging.getLogger("batchvoc.engines.aoti").debug("below the job's log_level: not written")
        logging.getLogger("batchvoc.runner.worker").error("an actor's error")
        written = capsys.readouterr().err.splitlines()
    finally:
        logger.setLevel(saved[0])
        logger.handlers[:] = saved[1]
        logger.propagate = saved[2]
    assert written == ["[batchvoc.engines.aoti][INFO] - aoti: building x.pt2, once per machine and key",
                       "[batchvoc.runner.worker][ERROR] - an actor's error"]  # fmt: skip
    assert worker_logs.route()
    caplog.set_level(logging.DEBUG, logger="batchvoc.worker")
    for line in written:
        rays_printer.emit(_batch(line, 6161))  # the actor's stderr
    rays_printer.emit(_batch("Traceback (most recent call last):", 6161))  # unmarked: its stream's level
    records = [(r.levelno, r.getMessage()) for r in caplog.records if "pid=6161)" in r.getMessage()]
    assert records == [(logging.INFO, "(ActorWorker pid=6161) aoti: building x.pt2, once per machine and key"),
                       (logging.ERROR, "(ActorWorker pid=6161) an actor's error"),
                       (logging.WARNING, "(ActorWorker pid=6161) Traceback (most recent call last):")]  # fmt: skip
