"""Every process a job starts ends with it: a real job in a subprocess, with its own local Ray, SIGKILLed or
SIGTERMed (Ray started as `python -m batchvoc` starts it: early, on a thread of its own)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from tests.conftest import mel_rows, write_manifest
from tests.raycluster import still_running

JOB = textwrap.dedent(
    """
    import sys
    from batchvoc.runner.driver import run_job
    from batchvoc.settings import JobSettings

    settings = JobSettings(manifest=sys.argv[1], out_dir=sys.argv[2], preset="hifigan_v1_universal",
                           checkpoint="random", hparams={"upsample_initial_channel": 32}, backend="eager",
                           precision="fp32", batch=1, cpu_actors=1, shard_seconds=0.3)
    run_job(settings, on_actor_ready=lambda info: print("READY", info["pid"], flush=True))
    """
)
EARLY_RAY = JOB.replace(
    "    run_job(settings, on_actor_ready",
    "    from batchvoc.runner.cluster import RayThread\n\n"
    "    ray_thread = RayThread('')\n    run_job(settings, ray_thread=ray_thread, on_actor_ready",
)


@pytest.mark.parametrize("job, stop", [(JOB, signal.SIGKILL), (EARLY_RAY, signal.SIGTERM)], ids=["kill", "term"])
def test_a_stopped_driver_leaves_no_process_of_its_job(tmp_path, job, stop):
    write_manifest(tmp_path / "in" / "m.parquet", mel_rows(400, 80, frames=30), row_group_size=4)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    driver = subprocess.Popen([sys.executable, "-c", job, str(tmp_path / "in"), str(tmp_path / "out")],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)  # fmt: skip
    try:
        line = driver.stdout.readline()
        assert line.startswith("READY"), f"the job did not start an actor: {line!r}"
        actor = int(line.split()[1])
        started = []
        for child in psutil.Process(driver.pid).children(recursive=True):
            try:
                started.append((child.pid, child.create_time(), " ".join(child.cmdline())))
            except psutil.NoSuchProcess:
                continue
        assert actor in {pid for pid, _, _ in started}, "the actor is not one of the job's processes"
        sessions = {arg.split("=", 1)[1] for _, _, title in started for arg in title.split()
                    if arg.startswith("--session-dir=")}  # fmt: skip
        assert len(started) >= 5 and sessions, started  # GCS, raylet, agents, the actor, the guard at least
    finally:
        os.kill(driver.pid, stop)  # the driver this test started, by its own pid
        code = driver.wait(timeout=60)
    deadline = time.monotonic() + 20
    while still_running(started) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not still_running(started), f"outlived the stopped driver: {still_running(started)}"
    # SIGTERM ends the driver as a Ctrl-C does (exit 143, runner/interrupts.py; its cleanup ran above); Ray's threads
    # may abort the interpreter's own teardown after that, so only "not a success" is asserted
    assert code == -signal.SIGKILL if stop == signal.SIGKILL else code != 0, code
    (session,) = sessions
    for process in psutil.process_iter(["cmdline"]):
        assert session not in " ".join(process.info["cmdline"] or []), process


def test_a_guard_that_died_early_does_not_break_the_driver_s_end(caplog):
    """A guard process gone before the driver's end (it could not start, say): close() warns, never raises."""
    from batchvoc.runner.lifetime import SessionGuard

    dead = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"], stdin=subprocess.PIPE, text=True)
    dead.wait(timeout=60)
    guard = SessionGuard(dead)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        guard.watch()  # writes into a pipe nobody reads: BrokenPipeError inside, 0 told
        with caplog.at_level("WARNING"):
            guard.close()
        assert "had exited (code 3)" in caplog.text
    finally:
        child.kill()
        child.wait(timeout=30)
