"""The worker as a Ray actor, with Ray's own fault tolerance.

Shards are idempotent (a shard's files are written under temp names and its manifest last), so Ray may run one
again: an actor that dies is restarted (`cluster.max_restarts`) and the shard calls it had in flight are retried
on the restarted actor (`cluster.max_task_retries`). An exception a shard raises is not retried: it would repeat.

`poll` runs in a concurrency group of its own, so the driver reads progress while `run` works; `run` stays one
at a time (the default group).
"""

from __future__ import annotations

from typing import Any

import ray

from batchvoc.models.presets import Preset
from batchvoc.runner.cluster import ActorPlan
from batchvoc.runner.worker import Worker
from batchvoc.settings import JobSettings


class ActorWorker(Worker):
    """`Worker` plus the methods the driver calls on the actor."""

    def __init__(self, settings: JobSettings, name: str, threads: int | None, preset: Preset | None = None,
                 weights: list | None = None):  # fmt: skip
        """`weights`: [ObjectRef] of the driver's state dict, nested in a list so that Ray does not hold it as a
        constructor argument (which it warns about for restartable actors); fetched here, on every (re)start."""
        super().__init__(settings, name, threads, preset, ray.get(weights[0]) if weights else None)

    def ready(self) -> dict[str, Any]:
        """The actor's info once its engine is ready (the first call returns when `__init__` has run)."""
        return self.info()

    @ray.method(concurrency_group="poll")
    def poll(self) -> dict[str, Any]:
        """Progress of this actor's process (see `Worker.progress_state`), answered while a shard runs."""
        return self.progress_state()


RemoteWorker = ray.remote(concurrency_groups={"poll": 1})(ActorWorker)


def fault_limits(settings: JobSettings) -> dict[str, int]:
    """Ray's actor options for restarts and retries, from cluster.max_restarts / cluster.max_task_retries."""
    return dict(max_restarts=settings.max_restarts, max_task_retries=settings.max_task_retries)


def start_actors(settings: JobSettings, plan: ActorPlan, preset: Preset | None = None, weights: Any = None) -> list:
    """Create `plan.count` actors (returns at once: each builds its engine in its own process).

    `weights`: an ObjectRef of the driver's state dict (`worker.weights_of`), read once and shared through the
    object store by every actor of a node (the caller keeps the ref while the actors live); None makes each
    actor read the checkpoint itself.
    """
    options = dict(plan.options, **fault_limits(settings))
    return [
        RemoteWorker.options(**options).remote(settings, name=f"actor-{i}", threads=plan.threads, preset=preset,
                                               weights=[weights] if weights is not None else None)  # fmt: skip
        for i in range(plan.count)
    ]
