"""The job lock on real folders and real processes: flock on local disks, a lease where there is no flock."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from batchvoc.errors import ConfigError
from batchvoc.runner.lock import LOCK, JobLock
from batchvoc.storage import Store

HOLD = """
import sys, time
from batchvoc.runner.lock import JobLock
from batchvoc.storage import Store
lock = JobLock(Store(sys.argv[1]), use_flock=sys.argv[2] == "flock")
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def _holder(folder, mode="flock") -> subprocess.Popen:
    """A real process that takes the lock on `folder` and keeps it until killed (by its own pid)."""
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), mode], stdout=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.parametrize("mode", ["flock", "lease"])
def test_a_second_job_is_refused_naming_the_holder_and_gets_the_lock_once_it_is_killed(tmp_path, mode):
    proc = _holder(tmp_path, mode)
    try:
        with pytest.raises(ConfigError) as err:
            JobLock(Store(tmp_path), use_flock=mode == "flock").acquire()
        assert err.value.key == "output.dir"
        assert f"pid {proc.pid}" in str(err.value) and socket.gethostname() in str(err.value)
        assert str(tmp_path) in str(err.value)
    finally:
        _kill(proc)
    # a SIGKILLed owner: the kernel dropped its flock; its lease names a dead pid on this host
    with JobLock(Store(tmp_path), use_flock=mode == "flock") as lock:
        held = json.loads((tmp_path / LOCK).read_text())
        assert held["pid"] == os.getpid() and held["token"] == lock.token
    assert not (tmp_path / LOCK).exists()


def test_two_locks_in_one_process_exclude_each_other_and_release_lets_the_next_in(tmp_path):
    first = JobLock(Store(tmp_path))
    first.acquire()
    with pytest.raises(ConfigError):
        JobLock(Store(tmp_path)).acquire()
    first.release()
    with JobLock(Store(tmp_path)):
        pass


def test_a_lease_from_another_host_is_respected_until_it_expires(tmp_path):
    stale = dict(pid=1, host="elsewhere.example", token="x", started="then", renewed=time.time(), lease_s=60)
    (tmp_path / LOCK).write_text(json.dumps(stale))
    with pytest.raises(ConfigError) as err:
        JobLock(Store(tmp_path), use_flock=False).acquire()
    assert "elsewhere.example" in str(err.value) and "lapses" in str(err.value)
    stale["renewed"] = time.time() - 61
    (tmp_path / LOCK).write_text(json.dumps(stale))
    with JobLock(Store(tmp_path), use_flock=False) as lock:
        assert json.loads((tmp_path / LOCK).read_text())["token"] == lock.token


def test_a_lease_is_renewed_while_the_job_runs(tmp_path):
    with JobLock(Store(tmp_path), lease_s=0.4, use_flock=False):
        first = json.loads((tmp_path / LOCK).read_text())["renewed"]
        time.sleep(0.5)
        assert json.loads((tmp_path / LOCK).read_text())["renewed"] > first
        with pytest.raises(ConfigError):  # renewed: never stale while its owner lives
            JobLock(Store(tmp_path), lease_s=0.4, use_flock=False).acquire()


@pytest.mark.parametrize("mode", ["flock", "lease"])
def test_the_quick_checks_probe_names_a_running_job_and_takes_nothing(tmp_path, mode):
    """refuse_if_held (the quick checks' probe, before Ray and the weights) refuses while a real process holds the
    lock, leaves it held, and passes once that process is killed. Where there is no flock the lease is read: here
    the lease mode's lock file is probed as the lease it is."""
    from batchvoc.runner.lock import refuse_if_held

    refuse_if_held(Store(tmp_path))  # no lock file at all
    proc = _holder(tmp_path, mode)
    try:
        with pytest.raises(ConfigError) as err:
            refuse_if_held(Store(tmp_path) if mode == "flock" else _NoFlockStore(tmp_path))
        assert err.value.key == "output.dir" and f"pid {proc.pid}" in str(err.value)
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == proc.pid  # still the holder's
    finally:
        _kill(proc)
    refuse_if_held(Store(tmp_path) if mode == "flock" else _NoFlockStore(tmp_path))  # a killed holder holds nothing


class _NoFlockStore(Store):
    """A local folder read as an object store would be (no flock): the lease path of the probe."""

    def __init__(self, url):
        super().__init__(url)
        self.local = False
