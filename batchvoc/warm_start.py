"""Warm a machine's bytecode cache for a job's start: what `python -m batchvoc.build` does last.

On an image without bytecode (batchvoc/bytecode.py) the first job on a machine compiles the source of every module
its processes import: the driver, Ray's own Python processes and each actor. That made the first 8 h gsv_v4 job on
an H200 take 24.5 s against 21.0 s for the next (BENCHMARKS.md, H200 session 4). `warm_job_start()` runs those
imports once, the way a job does: a local Ray of its own (its processes write their bytecode into the cache they
inherit through PYTHONPYCACHEPREFIX) and one actor of batchvoc's actor class, created and shut down.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def warm_job_start() -> float:
    """Start a local Ray with one CPU actor that imports a job actor's modules, then shut it all down; returns the
    seconds it took. Leaves no process behind (ray.shutdown ends the cluster it started)."""
    began = time.perf_counter()
    import ray

    import batchvoc.runner.driver  # noqa: F401 - the driver's own imports

    ray.init(address="local", include_dashboard=False, num_cpus=1, num_gpus=0, log_to_driver=False)
    try:
        actor = ray.remote(num_cpus=1)(_Importer).remote()
        ray.get(actor.imported.remote())
    finally:
        ray.shutdown()
    return time.perf_counter() - began


class _Importer:
    """An actor importing what batchvoc's actors import (runner/actors.py and the worker it runs)."""

    def __init__(self) -> None:
        import batchvoc.runner.actors  # noqa: F401

    def imported(self) -> bool:
        return True
