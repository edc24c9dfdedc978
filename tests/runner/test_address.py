"""cluster.address that names a cluster which is not there: `python -m batchvoc` as users run it (a real process, real
Ray, real sockets on ports this test picked) stops in seconds naming cluster.address, and Ctrl-C during a Ray start
that is stuck ends the job in seconds."""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import pytest

from batchvoc.runner import cluster
from batchvoc.runner.cluster import INTERRUPTED_WAIT_S, endpoint
from tests.raycluster import descendants, free_ports, reap
from tests.runner.test_driver import three_files
from tests.test_cli import batchvoc

ARGS = ("job=hifigan_v1", "model.checkpoint=random", "+model.hparams.upsample_initial_channel=32",
        "engine.backend=eager")  # fmt: skip


def test_the_endpoint_of_each_address_form():
    assert endpoint("localhost:39717") == ("localhost", 39717)
    assert endpoint("ray://10.0.0.5:10001") == ("10.0.0.5", 10001)
    assert endpoint("ray://head:10001/?namespace=x") == ("head", 10001)
    assert endpoint("[::1]:6379") == ("::1", 6379)
    for unprobed in ("auto", "local", "ray://head", "head", "head:port", "http://head:8265"):
        assert endpoint(unprobed) is None, unprobed


@pytest.mark.parametrize("form", ["host:port", "ray://", "RAY_ADDRESS"])
def test_an_address_nothing_answers_at_stops_the_job_in_seconds_naming_cluster_address(tmp_path, monkeypatch, form):
    three_files(tmp_path / "in", rows=3)
    (port,) = free_ports(1)  # bound and released: nothing listens there
    address = {"host:port": f"localhost:{port}", "ray://": f"ray://127.0.0.1:{port}"}.get(form, f"127.0.0.1:{port}")
    overrides = [*ARGS, f"input.manifest={tmp_path / 'in'}", f"output.dir={tmp_path / 'out'}"]
    if form == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", address)  # what `ray job submit` sets; the child inherits it
    else:
        overrides.append(f"cluster.address={address}")
    began = time.monotonic()
    result = batchvoc(*overrides, timeout=120)
    took = time.monotonic() - began
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    (said,) = [line for line in result.stderr.splitlines() if line.startswith("batchvoc: cannot run:")]
    assert said.startswith("batchvoc: cannot run: cluster.address: nothing answers at"), said
    assert address in said and "Ray head is running" in said, said
    # Ray's own: ~14 min for host:port, ~30 s for ray:// (and its words, not these); the probe's: at once, after the
    # driver's imports (seconds, on 2 shared cores)
    assert took < 25, took


def test_ctrl_c_during_a_stuck_ray_start_ends_the_job_in_seconds(tmp_path):
    three_files(tmp_path / "in", rows=3)
    # a port that takes TCP connections (the probe passes) and never speaks: ray.init waits on its GCS connection
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        proc = batchvoc(*ARGS, f"input.manifest={tmp_path / 'in'}", f"output.dir={tmp_path / 'out'}",
                        f"cluster.address=127.0.0.1:{port}", wait=False)  # fmt: skip
        seen = []
        try:
            # the driver waits for Ray once it holds output.dir: a new job's shards are cut for the engine's
            # batches on the devices Ray has (driver.run_job's `packing`)
            for line in proc.stdout:
                seen.append(line)
                if re.search(r"output\.dir .*: new job, ", line):
                    break
            assert proc.poll() is None, "".join(seen)
            time.sleep(1)
            began = time.monotonic()
            os.kill(proc.pid, signal.SIGINT)  # the job's own pid, as a terminal's Ctrl-C
            rest = proc.communicate(timeout=60)[0]
            took = time.monotonic() - began
        finally:
            left = descendants(proc.pid) if proc.poll() is None else []
            proc.kill()
            reap(left)
    console = "".join(seen) + rest
    assert proc.returncode == 130, console[-3000:]
    assert "batchvoc: interrupted; run the same command again" in console, console[-3000:]
    # Ray's own bound on this start is ~41 s (one GCS attempt); before, the process waited for it forever
    assert took < INTERRUPTED_WAIT_S + 5, took


@pytest.mark.slow
def test_an_endpoint_that_answers_but_is_no_ray_head_stops_the_job_after_one_gcs_attempt(tmp_path):
    three_files(tmp_path / "in", rows=3)
    with socket.socket() as silent:  # takes TCP connections, never speaks: the probe passes, Ray's GCS connect not
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        result = batchvoc(*ARGS, f"input.manifest={tmp_path / 'in'}", f"output.dir={tmp_path / 'out'}",
                          f"cluster.address={address}", timeout=300)  # fmt: skip
        took = time.monotonic() - began
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    (said,) = [line for line in result.stderr.splitlines() if line.startswith("batchvoc: cannot run:")]
    assert said.startswith(f"batchvoc: cannot run: cluster.address: cannot reach the Ray cluster at {address!r}"), said
    assert "no Ray head let us in" in said and "the address is not a head's" in said, said
    assert took < 120, took  # one GCS attempt (~41 s) and the driver's start, not Ray's 20 (~14 min)


def test_no_cluster_found_is_said_so_not_that_a_head_refused_us():
    """Ray's 'Could not find any running Ray instance' (auto, no cluster on this machine) came with 'it answers, but
    no Ray head let us in' and the token advice, though nothing was asked; a head that does not let us in keeps
    them."""
    none = cluster.unreachable_hint(ConnectionError(f"{cluster.NO_CLUSTER_FOUND}. Please specify ..."), "auto")
    assert "it answers" not in none and "token" not in none and "`ray start --head` runs on this machine" in none
    refused = cluster.unreachable_hint(ConnectionError("Failed to connect to Ray cluster"), "10.0.0.1:6379")
    assert "it answers" in refused and "token" in refused


def test_auto_without_a_cluster_on_this_machine_says_so_not_that_a_head_refused_us(tmp_path):
    """cluster=existing (address auto) where no Ray cluster runs on this machine (auto also joins any GCS process
    it finds, so this needs a machine without one: the suite's own shared cluster, once started, makes it skip)."""
    from ray._private.services import find_gcs_addresses

    if find_gcs_addresses():
        pytest.skip("a Ray cluster runs on this machine (this suite's or another's): auto would join it")
    three_files(tmp_path / "in", rows=3)
    (tmp_path / "ray").mkdir()
    result = batchvoc(*ARGS, "cluster=existing", f"input.manifest={tmp_path / 'in'}", f"output.dir={tmp_path / 'out'}",
                      timeout=120, env={"RAY_TMPDIR": str(tmp_path / "ray")})  # fmt: skip
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    (said,) = [line for line in result.stderr.splitlines() if line.startswith("batchvoc: cannot run:")]
    assert said.startswith("batchvoc: cannot run: cluster.address: cannot reach the Ray cluster at 'auto'"), said
    assert "it answers" not in said and "token" not in said, said
    assert "`ray start --head` runs on this machine" in said, said
