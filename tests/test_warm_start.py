"""warm_start: a job's processes write their bytecode into the cache they are given, and nothing is left running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.raycluster import descendants, reap

ROOT = Path(__file__).resolve().parent.parent


def test_warming_fills_the_cache_for_the_driver_ray_and_an_actor_and_leaves_nothing_running(tmp_path):
    cache = tmp_path / "pycache"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPYCACHEPREFIX=str(cache), RAY_ADDRESS="")
    code = "from batchvoc.warm_start import warm_job_start; print(warm_job_start())"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        started = descendants(proc.pid) if proc.poll() is None else []
        proc.kill()
        reap(started)
    assert proc.returncode == 0, out
    assert float(out.strip().splitlines()[-1]) > 0
    cached = {p.relative_to(cache).as_posix() for p in cache.rglob("*.pyc")}
    assert any("/batchvoc/runner/actors." in p for p in cached), sorted(cached)[:5]
    assert any("/ray/_private/worker." in p for p in cached)
    # Ray's own Python processes (not the driver) compiled theirs: the dashboard agent's modules
    assert any("/ray/dashboard/" in p for p in cached)
    assert not [c for c in descendants(os.getpid()) if str(proc.pid) in " ".join(c.cmdline() or [])]
