"""runner/cluster.py's end of a cluster: a local Ray this process started ends with every process it started, without
Ray's serial waits; a cluster it joined runs on untouched. Real Ray, each driver a subprocess of its own."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.raycluster import descendants, join_node, reap, run_child, start_head, still_running

ROOT = Path(__file__).resolve().parents[2]

# connect, one actor, then disconnect: prints how long disconnect took and the processes it had started
DRIVER = textwrap.dedent(
    """
    import json, os, sys, time
    import psutil, ray
    from batchvoc.runner.cluster import LOCAL_SYSTEM_CONFIG, connect, disconnect

    local = connect(sys.argv[1])

    @ray.remote(num_cpus=0)
    class Pid:
        def pid(self):
            return os.getpid()

    actor = ray.get(Pid.remote().pid.remote())
    started = []
    for child in psutil.Process().children(recursive=True):
        try:
            started.append((child.pid, child.create_time(), " ".join(child.cmdline())))
        except psutil.NoSuchProcess:
            continue
    began = time.perf_counter()
    disconnect()
    print(json.dumps({"local": local, "took": time.perf_counter() - began, "actor": actor, "started": started,
                      "system_config": LOCAL_SYSTEM_CONFIG}))
    """
)


def _drive(address: str, env: dict[str, str]) -> dict:
    code, out, err = run_child([sys.executable, "-c", DRIVER, address], env, ROOT)
    assert code == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_a_local_cluster_ends_with_every_process_it_started_without_ray_s_serial_wait():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    ran = _drive("", env)
    assert ran["local"] is True
    titles = " ".join(title for _, _, title in ran["started"])
    assert "autoscaler/_private/monitor.py" in titles and "raylet" in titles and "DashboardAgent" in titles
    assert ran["actor"] in {pid for pid, _, _ in ran["started"]}
    deadline = time.monotonic() + 10  # an idle worker notices its raylet is gone a moment after ray.shutdown()
    while (left := still_running(ran["started"])) and time.monotonic() < deadline:
        time.sleep(0.1)
    reap([psutil.Process(int(line.split()[0])) for line in left])  # ours: started by the driver this test ran
    assert not left, f"outlived the local cluster's shutdown: {left}"
    # ray.shutdown() alone waits 1 s for the monitor to give up on the GCS it stopped just before, then kills it
    assert ran["took"] < 1.0, ran["took"]
    # the cluster's config (the GCS hands it to the raylet and the workers): sockets retried every 0.1 s
    (config,) = [json.loads(base64.b64decode(arg.split("=", 1)[1])) for _, _, title in ran["started"]
                 for arg in title.split() if arg.startswith("--config_list=")]  # fmt: skip
    assert config["raylet_client_connect_timeout_milliseconds"] == 100, config
    assert config["raylet_client_num_connect_attempts"] == 100, config
    # Ray writes its spilling settings into the dict it is given: the next job (a sweep's) would pass them back
    assert set(ran["system_config"]) == {
        "raylet_client_connect_timeout_milliseconds",
        "raylet_client_num_connect_attempts",
    }


@pytest.mark.slow
def test_leaving_a_joined_cluster_leaves_every_process_of_it_running(tmp_path):
    head = start_head(tmp_path)
    try:
        ran = _drive(head.gcs, head.client_env(PYTHONPATH=str(ROOT)))
        assert ran["local"] is False
        titles = [" ".join(p.cmdline()) for p in head.children if p.is_running()]
        assert any("autoscaler/_private/monitor.py" in t for t in titles), titles
        stopped = [p.pid for p in head.children if not p.is_running()]
        assert not stopped, f"the joined cluster lost processes {stopped}"
    finally:
        head.stop()


def _end_the_first_client_server(head, ended: list[int], stop: threading.Event) -> None:
    """SIGKILL the first process the head's Ray client server starts for a ray:// driver, as it starts (what
    ray-project/ray#63202's abort does to it)."""
    while not stop.is_set():
        for proc in descendants(head.process.pid):
            try:
                if "--mode=specific-server" in proc.cmdline():
                    proc.kill()
                    ended.append(proc.pid)
                    return
            except psutil.Error:
                continue
        time.sleep(0.005)


@pytest.mark.slow
def test_a_ray_client_connects_again_when_the_head_loses_its_server_process(tmp_path):
    # the head gives a started server process 20 s to answer (Ray's default is 30 s)
    head = start_head(tmp_path, env={"RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "20"})
    ended, stop = [], threading.Event()
    killer = threading.Thread(target=_end_the_first_client_server, args=(head, ended, stop), daemon=True)
    killer.start()
    try:
        code, out, err = run_child([sys.executable, "-c", DRIVER, head.client], head.client_env(PYTHONPATH=str(ROOT)),
                                   ROOT)  # fmt: skip
        assert ended, "no client server process was seen starting"
        assert code == 0, err[-3000:]
        assert "connecting again (attempt 2 of 3)" in err, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1])["local"] is False
    finally:
        stop.set()
        head.stop()


def _speech_manifest(folder: Path, speech) -> list[dict]:
    """folder/m.parquet: 12 rows of real speech (espeak-ng's, 4 sentences 3 times), 1.5-4 s each; returns the rows."""
    from batchvoc.models.presets import get_preset
    from tests.conftest import write_manifest
    from tests.speech import speech_mels

    mels = speech_mels(speech, get_preset("hifigan_v1_universal"))
    rows = [dict(id=f"u{i:02d}", mel=m.ravel(), n_frames=m.shape[1], n_mels=80)
            for i, m in enumerate(mels * 3)]  # fmt: skip
    write_manifest(folder / "m.parquet", rows)
    return rows


def _job(manifest: Path, out: Path, address: str, actors: int) -> list[str]:
    """The command line of a job of the pretrained HiFi-GAN V1 on the cluster at `address`, shards of ~3 s."""
    return [sys.executable, "-m", "batchvoc", "job=hifigan_v1", f"input.manifest={manifest}", f"output.dir={out}",
            f"cluster.address={address}", f"cluster.cpu_actors={actors}", "input.shard_seconds=3"]  # fmt: skip


def _wait_for(log: Path, words: list[str], proc, timeout: float = 180.0) -> str:
    """The job's console log once it holds every one of `words` (the job still running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if all(w in text for w in words):
            return text
        assert proc.poll() is None, text[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"never saw {words}:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_a_job_whose_worker_node_dies_finishes_on_the_rest_every_row_once(tmp_path, speech):
    """Two nodes of 1 CPU, one actor each; the second node SIGKILLed mid-job. Ray cannot restart its actor (no CPU
    free): the job finishes on the head's actor, its lost shards run there, exit 0 (it hung at the shards dealt to
    the actor Ray could not restart, before)."""
    import pyarrow.parquet as pq
    import soundfile as sf

    rows = _speech_manifest(tmp_path / "in", speech)
    head = start_head(tmp_path, num_cpus=1)
    node = None
    try:
        node = join_node(head, tmp_path, num_cpus=1)
        out, log = tmp_path / "out", tmp_path / "job.log"
        args = _job(tmp_path / "in", out, head.gcs, actors=2)
        with open(log, "w") as console:
            job = subprocess.Popen(args, cwd=ROOT, env=head.client_env(), stdout=console, stderr=subprocess.STDOUT)
        try:
            _wait_for(log, ["actor-0 ready in", "actor-1 ready in", "first audio written"], job)
            node.kill()
            code = job.wait(timeout=240)
        finally:
            left = descendants(job.pid) if job.poll() is None else []
            job.kill()
            reap(left)
        text = log.read_text()
        assert code == 0, text[-3000:]
        assert "cannot be reached" in text, text[-3000:]  # the console says which actor was lost, and what follows
        table = pq.read_table(out / "manifest")
        ids = table.column("id").to_pylist()
        assert sorted(ids) == sorted(r["id"] for r in rows)  # every row once
        assert set(table.column("status").to_pylist()) == {"ok"}
        for path in table.column("path").to_pylist():
            audio, rate = sf.read(out / path)
            assert rate == 22050 and audio.size > 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["rows_ok"] == len(rows) and summary["rows_not_run"] == 0 and not summary["shards_failed"]
    finally:
        if node is not None:
            node.stop()
        head.stop()


@pytest.mark.slow
def test_a_job_that_loses_its_cluster_s_head_ends_with_its_summary_and_resumes_on_a_new_head(tmp_path, speech):
    """The head (the only node) SIGKILLed mid-job: the driver ends within ~20 s, exit 1, one line naming the lost
    head, summary.json saying so (Ray's GCS client ended the driver 60 s after, exit 1, no summary.json, its last
    words a C++ log line); the same command against a new head runs only the shards not done."""
    import pyarrow.parquet as pq

    rows = _speech_manifest(tmp_path / "in", speech)
    out, log = tmp_path / "out", tmp_path / "job.log"
    head = start_head(tmp_path, num_cpus=1)
    try:
        with open(log, "w") as console:
            job = subprocess.Popen(_job(tmp_path / "in", out, head.gcs, actors=1), cwd=ROOT, env=head.client_env(),
                                   stdout=console, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            _wait_for(log, ["actor-0 ready in", "first audio written"], job)
            head.kill()
            killed = time.monotonic()
            code = job.wait(timeout=120)
            took = time.monotonic() - killed
        finally:
            left = descendants(job.pid) if job.poll() is None else []
            job.kill()
            reap(left)
    finally:
        head.stop()
    text = log.read_text()
    assert code == 1, text[-3000:]
    assert took < 45, (took, text[-3000:])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_early"].startswith("lost the Ray cluster's head"), summary["stopped_early"]
    assert summary["rows_not_run"] > 0 and summary["rows_ok"] + summary["rows_not_run"] == len(rows)
    assert "the same command runs exactly those once the cluster is back" in text, text[-3000:]
    done = len(list((out / "manifest").glob("*.parquet")))

    head = start_head(tmp_path, num_cpus=1)  # a new head: another token, other ports
    try:
        code, console, err = run_child(_job(tmp_path / "in", out, head.gcs, actors=1), head.client_env(), ROOT)
    finally:
        head.stop()
    said = console + err
    assert code == 0, said[-3000:]
    assert f"{done} already done, {len(list((out / 'manifest').glob('*.parquet'))) - done} to run" in said, said[-3000:]
    table = pq.read_table(out / "manifest")
    assert sorted(table.column("id").to_pylist()) == sorted(r["id"] for r in rows)  # every row once
    assert set(table.column("status").to_pylist()) == {"ok"}
