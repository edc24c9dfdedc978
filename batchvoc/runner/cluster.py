"""Ray: start a local cluster or join one, and decide how many workers it gets and what each reserves."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import ray

from batchvoc.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActorPlan:
    """How many workers to start and the Ray resources each reserves."""

    count: int
    num_gpus: float
    num_cpus: float

    @property
    def options(self) -> dict:
        return {"num_gpus": self.num_gpus, "num_cpus": self.num_cpus}

    @property
    def threads(self) -> int:
        return max(int(self.num_cpus), 1)


def connect(address: str) -> None:
    """Join cluster.address (`auto` or ray://host:port), the cluster `ray job submit` names, or start a local one."""
    if ray.is_initialized():
        return
    try:
        if address:
            ray.init(address=address, log_to_driver=True)
        elif os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=True)  # under `ray job submit`: the job's own cluster
        else:
            ray.init(address="local", include_dashboard=False, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ConfigError("cluster.address", f"cannot reach the Ray cluster at {address!r}: {err}") from err
    log.info("Ray cluster: %s", ray.cluster_resources())


def plan_actors(cpu_actors: int) -> ActorPlan:
    """One worker per GPU; where the cluster has none, `cpu_actors` workers sharing its CPUs."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return ActorPlan(count=gpus, num_gpus=1, num_cpus=1)
    cpus = max(int(resources.get("CPU", 1)), 1)
    if cpu_actors > cpus:
        raise ConfigError("cluster.cpu_actors", f"{cpu_actors} CPU actors asked for, the cluster has {cpus} CPUs")
    return ActorPlan(count=cpu_actors, num_gpus=0, num_cpus=cpus // cpu_actors)
