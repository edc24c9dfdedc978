"""warm_start: a job's processes write their bytecode into the cache they are given, and nothing is left running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from tests.raycluster import reap, run_child

ROOT = Path(__file__).resolve().parent.parent

# the warming process lists its Ray's processes (its descendants) as it shuts Ray down, so the test can look for them
CHILD = """
import psutil, ray
from batchvoc.warm_start import warm_job_start

shutdown = ray.shutdown
def listing_shutdown(*args, **kwargs):
    print("ray", *[f"{c.pid}:{c.create_time()!r}" for c in psutil.Process().children(recursive=True)])
    shutdown(*args, **kwargs)
ray.shutdown = listing_shutdown
print("took", warm_job_start())
"""


def test_warming_fills_the_cache_for_the_driver_ray_and_an_actor_and_leaves_nothing_running(tmp_path):
    cache = tmp_path / "pycache"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPYCACHEPREFIX=str(cache), RAY_ADDRESS="")
    code, out, _ = run_child([sys.executable, "-c", CHILD], env, ROOT, stderr=subprocess.STDOUT)
    assert code == 0, out
    took = [float(line.split()[1]) for line in out.splitlines() if line.startswith("took ")]
    listed = [line.split()[1:] for line in out.splitlines() if line.startswith("ray ")]
    assert took and took[0] > 0 and listed and listed[0], out  # its local Ray's processes and the actor's
    left = [proc for proc in map(_running, listed[0]) if proc is not None]
    reap(left)
    assert not left, "warm_job_start left its Ray's processes running"
    cached = {p.relative_to(cache).as_posix() for p in cache.rglob("*.pyc")}
    assert any("/batchvoc/runner/actors." in p for p in cached), sorted(cached)[:5]
    assert any("/ray/_private/worker." in p for p in cached)
    assert any("/ray/dashboard/" in p for p in cached)  # Ray's own Python processes compiled theirs too


def _running(listed: str) -> psutil.Process | None:
    """The process `pid:create_time` if it still runs (the same process: a reused pid has another start time)."""
    pid, created = listed.split(":")
    try:
        proc = psutil.Process(int(pid))
        running = proc.create_time() == float(created) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return None
    return proc if running else None
