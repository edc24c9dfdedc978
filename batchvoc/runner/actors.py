"""The worker as a Ray actor, with Ray's own fault tolerance.

Shards are idempotent (a shard's files are written under temp names and its manifest last), so Ray may run one
again: an actor that dies is restarted (`cluster.max_restarts`) and the shard calls it had in flight are retried
on the restarted actor (`cluster.max_task_retries`). A transient write fault (`WriteFault` with permanent False:
a network file system hiccup, an object store's 5xx) is retried the same way (`retry_exceptions`); any other
exception a shard raises is not: it would repeat.

`poll` runs in a concurrency group of its own, so the driver reads progress while `run` works; `run` has a group
of IN_FLIGHT_PER_ACTOR threads (runner/dealer.py deals that many shards per actor), so one shard reads and checks
its first rows, or writes its last, while another vocodes: they take turns on the device (Worker.run).

The driver's weights reach an actor through `setup(weights)`, a call after its creation, not through its
constructor: Ray keeps a call's object-store arguments only until the call returns, and warns about restartable
actors whose constructor takes one. A restarted actor reads the checkpoint itself.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import ray

from batchvoc.manifest import Shard
from batchvoc.models.presets import Preset
from batchvoc.runner import worker_logs
from batchvoc.runner.cluster import ActorPlan
from batchvoc.runner.dealer import IN_FLIGHT_PER_ACTOR
from batchvoc.runner.lifetime import process_started_at
from batchvoc.runner.worker import Worker
from batchvoc.settings import JobSettings
from batchvoc.storage import WriteFault

IMPORTED_AT = time.time()  # in an actor's process: Ray's worker started and imported this module (torch included)


class TransientWriteFault(OSError):
    """A write fault that may not repeat (WriteFault.permanent False): Ray retries the shard for it."""


class ActorWorker(Worker):
    """`Worker` plus the methods the driver calls on the actor."""

    def __init__(self, settings: JobSettings, name: str, threads: int | None = None, preset: Preset | None = None,
                 weights_later: bool = False, log_level: int = logging.INFO):  # fmt: skip
        """weights_later: the driver calls `setup(weights)` next. Ray restarts an actor by calling this again with
        the same arguments, and no `setup` follows: a restarted actor reads the checkpoint itself on its first
        shard (no restart lookup: Ray's `was_current_actor_reconstructed` warns of its own deprecated call).
        log_level: the driver's; the actor's records from it up reach the driver's console at their own level."""
        worker_logs.from_actor(log_level)
        self._args, self._started = (settings, name, threads, preset), time.perf_counter()
        self._steps = {"process started": process_started_at(), "imported": IMPORTED_AT, "created": time.time()}
        self.vocoded_s, self.first_audio_at, self.first_shard_at, self._built = 0.0, None, None, False
        self._building = threading.Lock()  # a restarted actor's two first shards build the engine once
        if not weights_later:
            self._build(None)

    def _build(self, weights: Any) -> None:
        with self._building:
            if self._built:
                return
            settings, name, threads, preset = self._args
            Worker.__init__(self, settings, name, threads, preset, weights, started=self._started)
            self._built = True

    def setup(self, weights: Any) -> dict[str, Any]:
        """Build the engine from the driver's weights (a state dict of arrays); returns the actor's info."""
        self._build(weights)
        return self.info()

    def ready(self) -> dict[str, Any]:
        """The actor's info once its engine is ready (a restarted actor builds it from the checkpoint here: no
        `setup` comes to it; the driver asks an actor it lost whether it is back this way)."""
        self._build(None)
        return self.info()

    def info(self) -> dict[str, Any]:
        """`Worker.info` plus `started`: when (epoch seconds, this host's clock) the actor's process started, had
        imported batchvoc's actor module, and entered its constructor (the driver's timeline shows them)."""
        return dict(super().info(), started=self._steps)

    @ray.method(concurrency_group="run", retry_exceptions=[TransientWriteFault])
    def run(self, shard: Shard) -> dict[str, Any]:
        """`Worker.run`; a write fault that may pass is raised as TransientWriteFault, which Ray retries."""
        self._build(None)  # restarted by Ray: no setup(weights) comes
        try:
            stats = super().run(shard)
        except WriteFault as fault:
            if fault.permanent:
                raise
            raise TransientWriteFault(str(fault)) from fault
        # when this process's first audio was written: a shard may end before the driver's next progress poll
        return dict(stats, first_audio_at=self.first_audio_at)

    @ray.method(concurrency_group="poll")
    def poll(self) -> dict[str, Any]:
        """Progress of this actor's process (see `Worker.progress_state`), answered while a shard runs."""
        return self.progress_state()


RemoteWorker = ray.remote(concurrency_groups={"poll": 1, "run": IN_FLIGHT_PER_ACTOR})(ActorWorker)


def fault_limits(settings: JobSettings) -> dict[str, int]:
    """Ray's actor options for restarts and retries, from cluster.max_restarts / cluster.max_task_retries."""
    return dict(max_restarts=settings.max_restarts, max_task_retries=settings.max_task_retries)


def create_actors(settings: JobSettings, plan: ActorPlan, preset: Preset | None = None,
                  weights_later: bool = False) -> list:  # fmt: skip
    """Create `plan.count` actors; returns at once, each actor's process starting and importing on its own.

    weights_later: `setup_actors` hands them the driver's weights next (each reads the checkpoint itself
    otherwise).
    """
    options = dict(plan.options, **fault_limits(settings))
    level = worker_logs.log.getEffectiveLevel()  # the actors log what the driver shows of theirs
    return [RemoteWorker.options(**options).remote(settings, f"actor-{i}", plan.threads, preset, weights_later, level)
            for i in range(plan.count)]  # fmt: skip


def setup_actors(actors: list, weights: Any = None) -> list:
    """Refs of each actor's info once its engine is ready. Returns at once: each actor builds its engine itself.

    `weights`: an ObjectRef of the driver's state dict (`worker.weights_of`), for actors created with
    weights_later: read from disk once, by the driver, and mapped by every actor of a node from Ray's object store
    without a copy. None: actors that read the checkpoint themselves.
    """
    return [a.setup.remote(weights) if weights is not None else a.ready.remote() for a in actors]
