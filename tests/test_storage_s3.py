"""Object stores in and out, against moto's real S3 server on 127.0.0.1 (a subprocess of ours, see s3server.py)."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import numpy as np
import pyarrow.parquet as pq
import pytest

from batchvoc import storage
from batchvoc.errors import ConfigError
from batchvoc.manifest import find_manifest_files, plan_shards, read_shard_rows
from batchvoc.manifest.schema import ManifestFiles
from batchvoc.models.presets import get_preset
from batchvoc.runner.checks import quick_checks
from batchvoc.runner.driver import plan, run_job
from batchvoc.runner.resume import hold_output
from batchvoc.settings import JobSettings
from batchvoc.stats import JobSummary
from tests.conftest import mel_rows, write_manifest
from tests.jobs import small_job
from tests.s3server import _start, _stop, s3_server  # noqa: F401 - the session fixture
from tests.test_cli import ROOT


@pytest.fixture
def bucket(s3_server):  # noqa: F811
    """A fresh bucket of our own on the test server; the process's storage options point at it."""
    name = f"corpus-{uuid.uuid4().hex[:8]}"
    fs = s3_server.filesystem()
    fs.mkdir(name)
    storage.set_options(s3_server.storage_options)
    yield name, fs
    storage.set_options({})


def put_manifest(fs, key: str, rows: list[dict], tmp_path, row_group_size: int = 4) -> None:
    local = write_manifest(tmp_path / "parts" / key.replace("/", "_"), rows, row_group_size=row_group_size)
    fs.put_file(str(local), key)


def s3_job(s3, bucket: str, run: str, **kw) -> JobSettings:
    base = dict(manifest=f"s3://{bucket}/mels/", out_dir=f"s3://{bucket}/out/{run}", batch=2, window=16,
                cpu_actors=1, shard_seconds=0.3, storage_options=s3.storage_options)  # fmt: skip
    return small_job(None, **{**base, **kw})


def test_manifests_and_npy_mels_are_found_and_read_in_the_bucket(bucket, tmp_path):
    name, fs = bucket
    put_manifest(fs, f"{name}/mels/a/part0.parquet", mel_rows(3, 80, frames=5, prefix="a"), tmp_path)
    put_manifest(fs, f"{name}/mels/b/part0.parquet", mel_rows(2, 80, frames=5, prefix="b"), tmp_path)
    files = find_manifest_files(f"s3://{name}/mels/")
    assert files == [f"s3://{name}/mels/a/part0.parquet", f"s3://{name}/mels/b/part0.parquet"]
    assert find_manifest_files(f"s3://{name}/mels/*/part0.parquet") == files
    shards = plan_shards(files, 10**6, root=f"s3://{name}/mels")
    assert [s.name for s in shards] == ["a__part0.r000000000-000000003", "b__part0.r000000000-000000002"]

    mel = np.full((80, 7), -5.0, np.float32)
    buffer = io.BytesIO()
    np.save(buffer, mel)
    fs.pipe_file(f"{name}/npy/mels/x.npy", buffer.getvalue())
    rows = [dict(id="x", mel_path="mels/x.npy"), dict(id="y", mel_path="mels/missing.npy"),
            dict(id="z", mel_path="../outside.npy")]  # fmt: skip
    put_manifest(fs, f"{name}/npy/m.parquet", rows, tmp_path)
    (shard,) = plan_shards(find_manifest_files(f"s3://{name}/npy/m.parquet"), 10**6)
    got = list(read_shard_rows(shard, 80))
    assert np.array_equal(got[0].mel, mel)
    assert "does not exist" in got[1].error and "leaves the manifest's folder" in got[2].error

    with pytest.raises(ConfigError) as err:  # a typo in the bucket is told from one in the key
        find_manifest_files(f"s3://{name}-typo/mels/")
    assert f"no bucket '{name}-typo'" in str(err.value) and "\n" not in str(err.value), err.value
    with pytest.raises(ConfigError, match=f"no bucket '{name}-typo'"):
        find_manifest_files(f"s3://{name}-typo")
    with pytest.raises(ConfigError) as err:
        find_manifest_files(f"s3://{name}/mles/")
    assert str(err.value).endswith("no such file or folder"), err.value


def test_a_job_reads_and_writes_the_bucket_and_a_rerun_skips_what_is_done(
    bucket,
    s3_server,  # noqa: F811 - the session fixture
    tmp_path,
    ray_cluster,
):
    name, fs = bucket
    rows = mel_rows(10, 80, frames=[8 + i for i in range(10)])
    put_manifest(fs, f"{name}/mels/part0.parquet", rows[:6], tmp_path)
    put_manifest(fs, f"{name}/mels/part1.parquet", rows[6:], tmp_path)
    settings = s3_job(s3_server, name, "run1")
    report = run_job(settings)
    assert report.exit_code == 0, report.summary
    out = f"{name}/out/run1"
    audio = sorted(fs.find(f"{out}/audio"))
    assert len(audio) == 10 and all(key.endswith(".wav") for key in audio)
    table = [r for key in sorted(fs.find(f"{out}/manifest")) for r in pq.read_table(fs.open(key)).to_pylist()]
    assert sorted(r["id"] for r in table) == sorted(r["id"] for r in rows)
    assert {f"{out}/{r['path']}" for r in table} == set(audio)
    summary = JobSummary.from_json(json.loads(fs.cat_file(f"{out}/summary.json")))
    assert summary.rows_ok == 10 and summary.shards == len(fs.find(f"{out}/stats"))
    assert summary.config["io"]["storage_options"] == dict(endpoint_url=s3_server.endpoint, key="<redacted>",
                                                           secret="<redacted>")  # fmt: skip
    assert fs.exists(f"{out}/job.json") and not fs.exists(f"{out}/.batchvoc.lock")
    report = fs.cat_file(f"{out}/report.html").decode()
    assert "<img" in report and "data:image/png;base64," in report  # the job report, pictures inline
    written = {key: fs.info(key)["LastModified"] for key in audio}

    again = run_job(settings)
    assert again.exit_code == 0 and again.summary.shards_skipped == again.summary.shards
    assert again.summary.this_run.shards == 0 and again.summary.rows_ok == 10
    assert {key: fs.info(key)["LastModified"] for key in sorted(fs.find(f"{out}/audio"))} == written

    fs.rm(audio[3])  # removed from the bucket since: the rerun puts it back, its shard's other files reused
    remade = run_job(settings)
    assert remade.exit_code == 0 and remade.summary.this_run.shards == 1 and fs.exists(audio[3])
    assert remade.summary.this_run.rows_vocoded == 1 and remade.summary.rows_ok == 10


def test_a_npy_rewritten_in_the_bucket_is_vocoded_again_by_the_rerun(
    bucket,
    s3_server,  # noqa: F811 - the session fixture
    tmp_path,
    ray_cluster,
):
    """mel_path rows in the bucket: a .npy put again with other content (its ETag changes) since its row was
    vocoded is vocoded again by the rerun, from the file as it is now; the other rows' audio stays as written."""
    name, fs = bucket
    rows = mel_rows(3, 80, frames=[20, 16, 12], seed=2)
    for row in rows:
        buffer = io.BytesIO()
        np.save(buffer, row["mel"].reshape(80, row["n_frames"]))
        fs.pipe_file(f"{name}/mels/npy/{row['id']}.npy", buffer.getvalue())
    put_manifest(fs, f"{name}/mels/part0.parquet", [dict(id=r["id"], mel_path=f"npy/{r['id']}.npy") for r in rows],
                 tmp_path)  # fmt: skip
    settings = s3_job(s3_server, name, "marks", shard_seconds=600)
    assert run_job(settings).exit_code == 0
    out = f"{name}/out/marks"
    written = {key: fs.info(key)["LastModified"] for key in sorted(fs.find(f"{out}/audio"))}
    buffer = io.BytesIO()
    np.save(buffer, rows[0]["mel"].reshape(80, 20)[:, :8])  # rewritten: 8 frames
    fs.pipe_file(f"{name}/mels/npy/{rows[0]['id']}.npy", buffer.getvalue())
    again = run_job(settings)
    assert again.exit_code == 0 and again.summary.this_run.rows_vocoded == 1, again.summary
    assert again.summary.this_run.rows_reused == 2 and again.summary.rows_ok == 3
    table = {r["id"]: r for key in fs.find(f"{out}/manifest") for r in pq.read_table(fs.open(key)).to_pylist()}
    assert table[rows[0]["id"]]["n_samples"] == 8 * 256
    now = {key: fs.info(key)["LastModified"] for key in sorted(fs.find(f"{out}/audio"))}
    assert {k: v for k, v in now.items() if rows[0]["id"] not in k} == {
        k: v for k, v in written.items() if rows[0]["id"] not in k
    }
    assert run_job(settings).summary.this_run.shards == 0  # nothing changed since: nothing to do


def test_workers_without_the_store_s_credentials_stop_the_job_in_one_reason_naming_them(
    bucket,
    s3_server,  # noqa: F811 - the session fixture
    tmp_path,
    ray_cluster,
    monkeypatch,
    caplog,
):
    """The driver has keys in its environment, the workers (a cluster started without them) have none: the first
    shard's failure names the worker and where keys go, and no further shards are dealt (every one would
    fail alike), not one bare 'Unable to locate credentials' per shard and 'run again to retry'."""
    import botocore.session

    def workers_keys() -> bool:
        return botocore.session.get_session().get_credentials() is not None

    if ray_cluster.get(ray_cluster.remote(workers_keys).remote()):
        pytest.skip("this machine gives Ray's workers AWS credentials of its own (environment, ~/.aws, IMDS)")
    name, fs = bucket
    for part in range(4):
        put_manifest(fs, f"{name}/mels/part{part}.parquet", mel_rows(2, 80, frames=6, prefix=f"p{part}"), tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # the driver's own; ray_cluster's workers started without
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    options = dict(endpoint_url=s3_server.endpoint, skip_instance_cache=True)
    with caplog.at_level(logging.ERROR, logger="batchvoc.runner.dealer"):
        report = run_job(s3_job(s3_server, name, "nokeys", storage_options=options, shard_seconds=100))
    assert report.exit_code == 1 and report.summary.rows_not_run == 8, report
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("shard ")]
    assert 1 <= len(failed) <= 2, failed  # the worker's first two shards, dealt at once; no more
    said = report.summary.stopped_early
    assert said and "\n" not in said and "no usable credentials" in said and "on worker actor-" in said, said
    assert "AWS_ACCESS_KEY_ID" in said and "io.storage_options" in said and "not only the driver's" in said, said


def test_a_job_killed_mid_way_finishes_on_rerun_with_nothing_duplicated(bucket, s3_server, tmp_path):  # noqa: F811
    """The command line, with credentials and endpoint from the standard AWS_* environment only."""
    name, fs = bucket
    rows = mel_rows(40, 80, frames=[30 + i % 10 for i in range(40)], seed=5)
    put_manifest(fs, f"{name}/mels/part0.parquet", rows[:25], tmp_path, row_group_size=25)
    put_manifest(fs, f"{name}/mels/part1.parquet", rows[25:], tmp_path, row_group_size=25)
    out = f"{name}/out/killed"
    cmd = [sys.executable, "-m", "batchvoc", "job=hifigan_v1", f"input.manifest=s3://{name}/mels/",
           f"output.dir=s3://{out}", "model.checkpoint=random", "+model.hparams.upsample_initial_channel=32",
           "engine.backend=eager", "engine.batch=2", "engine.window=16", "input.shard_seconds=0.5",
           f"hydra.run.dir={tmp_path / 'logs'}"]  # fmt: skip
    env = {**os.environ, **s3_server.env, "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(_keys(fs, f"{out}/manifest")) < 2:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # our own driver, by its pid
    proc.wait(timeout=60)
    time.sleep(2)
    done_then = _keys(fs, f"{out}/manifest")
    assert len(done_then) >= 2 and not fs.exists(f"{out}/summary.json")
    kept = {key: fs.info(key)["ETag"] for key in done_then}

    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    table = [r for key in _keys(fs, f"{out}/manifest") for r in pq.read_table(fs.open(key)).to_pylist()]
    assert sorted(r["id"] for r in table) == sorted(r["id"] for r in rows)  # every id exactly once
    assert {f"{out}/{r['path']}" for r in table} == set(_keys(fs, f"{out}/audio"))  # no stray audio
    assert {key: fs.info(key)["ETag"] for key in done_then} == kept  # done shards were not written again
    summary = JobSummary.from_json(json.loads(fs.cat_file(f"{out}/summary.json")))
    assert summary.rows_ok == 40 and summary.shards_skipped == len(done_then)
    assert summary.this_run.rows_ok == 40 - sum(pq.read_table(fs.open(k)).num_rows for k in done_then)


def test_a_store_gone_down_mid_job_ends_the_command_in_one_line_not_a_traceback(tmp_path):
    """The store stops answering while the job runs (our own moto server, stopped by its pid once the first shard
    is done): the shards fail their writes, and the job's end, which lists output.dir, cannot; the command ends with
    exit 1 and one line naming output.dir and the endpoint, not a botocore traceback (nor the lock's release
    raising over it)."""
    proc, endpoint = _start(tmp_path / "moto.log")
    try:
        import s3fs

        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing", skip_instance_cache=True)
        fs.mkdir("down")
        rows = mel_rows(24, 80, frames=[30 + i % 10 for i in range(24)], seed=3)
        put_manifest(fs, "down/mels/part0.parquet", rows, tmp_path, row_group_size=24)
        cmd = [sys.executable, "-m", "batchvoc", "job=hifigan_v1", "input.manifest=s3://down/mels/",
               "output.dir=s3://down/out", "model.checkpoint=random", "+model.hparams.upsample_initial_channel=32",
               "engine.backend=eager", "engine.batch=2", "engine.window=16", "input.shard_seconds=0.3",
               "io.storage_options={config_kwargs: {connect_timeout: 1, retries: {max_attempts: 1}}}",
               f"hydra.run.dir={tmp_path / 'logs'}"]  # fmt: skip
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "RAY_AUTH_MODE": "disabled"}  # fmt: skip
        job = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while time.time() < deadline and not _keys(fs, "down/out/manifest"):
            assert job.poll() is None, job.communicate()
            time.sleep(0.2)
    finally:
        _stop(proc)
    out, err = job.communicate(timeout=300)
    assert job.returncode == 1, err[-3000:]
    assert "Traceback" not in err and "Error executing job" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("batchvoc: ") and "s3://down/out" in last, err[-3000:]
    assert "cannot connect to the object store" in last and endpoint in last, last


def _keys(fs, prefix: str) -> list[str]:
    fs.invalidate_cache()
    try:
        return sorted(fs.find(prefix))
    except FileNotFoundError:
        return []


def test_the_job_lock_on_a_bucket_is_a_conditional_put_lease(bucket):
    from batchvoc.runner.lock import LOCK, JobLock
    from batchvoc.storage import Store

    name, fs = bucket
    store = Store(f"s3://{name}/out/locked")
    with JobLock(store) as lock:
        held = json.loads(fs.cat_file(f"{name}/out/locked/{LOCK}"))
        assert held["token"] == lock.token and held["pid"] == os.getpid()
        with pytest.raises(ConfigError) as err:  # the object exists: If-None-Match: * refuses the second
            JobLock(Store(f"s3://{name}/out/locked")).acquire()
        assert f"pid {os.getpid()}" in str(err.value)
    assert not fs.exists(f"{name}/out/locked/{LOCK}")
    stale = dict(pid=1, host="gone.example", token="x", started="then", renewed=time.time() - 500, lease_s=120)
    fs.pipe_file(f"{name}/out/locked/{LOCK}", json.dumps(stale).encode())
    with JobLock(store) as lock:  # an expired lease is taken over
        assert json.loads(fs.cat_file(f"{name}/out/locked/{LOCK}"))["token"] == lock.token


NO_CREDENTIALS = dict(AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials", AWS_CONFIG_FILE="/nonexistent/config",
                      AWS_EC2_METADATA_DISABLED="true")  # fmt: skip


def _without_credentials(monkeypatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in NO_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def test_no_credentials_stop_the_command_in_one_line_naming_the_key(s3_server, tmp_path):  # noqa: F811
    """The store's endpoint given, no keys anywhere: one line on input.manifest saying where keys go, exit 1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(NO_CREDENTIALS, RAY_AUTH_MODE="disabled")
    cmd = [sys.executable, "-m", "batchvoc", "job=hifigan_v1", "input.manifest=s3://bvt/mels/",
           "output.dir=s3://bvt/out", f"io.storage_options={{endpoint_url: '{s3_server.endpoint}'}}",
           f"hydra.run.dir={tmp_path / 'logs'}"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchvoc: cannot run: input.manifest: "), done.stderr[-3000:]
    assert "NoCredentialsError" in lines[0] and "AWS_ACCESS_KEY_ID" in lines[0] and "io.storage_options" in lines[0]


def test_no_credentials_for_an_output_dir_on_a_bucket_name_output_dir(s3_server, tmp_path, monkeypatch):  # noqa: F811
    _without_credentials(monkeypatch)
    manifest = write_manifest(tmp_path / "in.parquet", mel_rows(2, 80, frames=5))
    options = dict(endpoint_url=s3_server.endpoint, skip_instance_cache=True)
    settings = small_job(None, manifest=str(manifest), out_dir="s3://bvt/out", storage_options=options)
    try:
        with pytest.raises(ConfigError) as got:
            quick_checks(settings)
    finally:
        storage.set_options({})
    assert got.value.key == "output.dir" and "\n" not in str(got.value)
    assert "no usable credentials" in got.value.message and "key and secret in io.storage_options" in got.value.message


def test_keys_the_store_refuses_for_an_output_dir_are_named_as_credentials(tmp_path):
    """A store that checks keys (moto with INITIAL_NO_AUTH_ACTION_COUNT=0) refuses ours: s3fs raises a
    PermissionError (EACCES) from S3's InvalidAccessKeyId. output.dir's probe says so in one line naming the keys,
    as input.manifest's listing does, not a bare 'permission denied'; a write meeting it is not retried."""
    proc, endpoint = _start(tmp_path / "moto.log", env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    options = dict(endpoint_url=endpoint, key="wrong", secret="wrong", skip_instance_cache=True)
    manifest = write_manifest(tmp_path / "in.parquet", mel_rows(2, 80, frames=5))
    remote_in = small_job(None, manifest="s3://bvt/mels/", out_dir=str(tmp_path / "out"), storage_options=options)
    remote_out = small_job(None, manifest=str(manifest), out_dir="s3://bvt/out", storage_options=options)
    try:
        for key, settings in (("input.manifest", remote_in), ("output.dir", remote_out)):
            with pytest.raises(ConfigError) as got:
                quick_checks(settings)
            assert got.value.key == key and "\n" not in str(got.value), got.value
            assert "no usable credentials" in got.value.message, got.value
            assert "key and secret in io.storage_options" in got.value.message, got.value
        storage.set_options(options)
        with pytest.raises(storage.WriteFault) as fault:
            storage.Store("s3://bvt/out").write_bytes("x", b"")
        assert fault.value.kind == "credentials" and fault.value.permanent, fault.value
    finally:
        storage.set_options({})
        _stop(proc)


def test_a_mel_path_the_keys_cannot_read_is_a_row_error_saying_so(tmp_path):
    """A local manifest whose mel_path is a URL on a store that refuses our keys (S3 answers a HEAD with a bare 403:
    s3fs's PermissionError 'Forbidden'): the row's error says it cannot be read and to check the keys, not that
    the file 'is not a readable .npy file'."""
    proc, endpoint = _start(tmp_path / "moto.log", env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    manifest = write_manifest(tmp_path / "in.parquet", [dict(id="x", mel_path="s3://bvt/mels/x.npy")])
    try:
        storage.set_options(dict(endpoint_url=endpoint, key="wrong", secret="wrong", skip_instance_cache=True))
        (shard,) = plan_shards(find_manifest_files(str(manifest)), 10**6)
        (row,) = list(read_shard_rows(shard, 80))
    finally:
        storage.set_options({})
        _stop(proc)
    assert row.error.startswith("mel_path 's3://bvt/mels/x.npy' cannot be read: "), row.error
    assert "check the keys" in row.error and "not a readable" not in row.error and "\n" not in row.error, row.error


def test_an_endpoint_not_reached_stops_every_step_before_the_job_in_one_line(tmp_path):
    """Nothing listens on the endpoint (a free port, closed): the manifest's listing and reading, the output.dir
    probe, its lock and the driver's plan each raise a ConfigError naming their key and endpoint_url. botocore's
    retries are bounded here through io.storage_options, so each takes about a second."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = dict(endpoint_url=f"http://127.0.0.1:{port}", key="testing", secret="testing",
                   config_kwargs={"connect_timeout": 1, "retries": {"max_attempts": 1}})  # fmt: skip
    manifest = write_manifest(tmp_path / "in.parquet", mel_rows(2, 80, frames=5))
    remote_in = small_job(None, manifest="s3://bvt/mels/", out_dir=str(tmp_path / "out"), storage_options=options)
    remote_out = small_job(None, manifest=str(manifest), out_dir="s3://bvt/out", storage_options=options)
    listed = ManifestFiles(["s3://bvt/mels/a.parquet"])
    steps = [("input.manifest", lambda: quick_checks(remote_in)),
             ("input.manifest", lambda: plan(remote_in, listed, get_preset(remote_in.preset))),
             ("output.dir", lambda: quick_checks(remote_out)),
             ("output.dir", lambda: hold_output(remote_out).__enter__())]  # fmt: skip
    try:
        storage.set_options(options)
        for key, step in steps:
            started = time.perf_counter()
            with pytest.raises(ConfigError) as got:
                step()
            assert got.value.key == key and "\n" not in str(got.value), got.value
            assert "cannot connect to the object store" in got.value.message and "endpoint_url" in got.value.message
            assert time.perf_counter() - started < 10
    finally:
        storage.set_options({})


def test_a_storage_option_the_client_does_not_take_is_named_in_one_line(tmp_path):
    """A key of io.storage_options that s3fs's client refuses (a TypeError deep inside it, at first use) stops the
    steps before the job in one line naming io.storage_options, not a traceback; a write meeting it is a fault that
    repeats (not retried). No store needs to answer: the client refuses the option before it connects."""
    options = dict(endpoint_url="http://127.0.0.1:9", key="testing", secret="testing", retries=3,
                   skip_instance_cache=True)  # fmt: skip
    remote_in = small_job(None, manifest="s3://bvt/mels/", out_dir=str(tmp_path / "out"), storage_options=options)
    try:
        with pytest.raises(ConfigError) as got:
            quick_checks(remote_in)
    finally:
        storage.set_options({})
    assert got.value.key == "input.manifest" and "\n" not in str(got.value), got.value
    assert "does not take an option given in io.storage_options" in got.value.message
    assert "unexpected keyword argument 'retries'" in got.value.message
    try:
        storage.set_options(options)
        with pytest.raises(storage.WriteFault) as fault:
            storage.Store("s3://bvt/out").write_bytes("x", b"")
    finally:
        storage.set_options({})
    assert fault.value.kind == "options" and fault.value.permanent and "io.storage_options" in str(fault.value)


def test_mel_path_files_on_a_slow_store_are_fetched_several_at_a_time(tmp_path):
    """An object store answers each GET after tens of ms; read one after another, 16 mel_path rows cost 16 round
    trips, and a worker's reader (one per shard) feeds a GPU far slower than it vocodes. The rows of a read batch
    are fetched at once. A real HTTP server of ours (fsspec's http://) holds each answer 150 ms."""
    import http.server
    import threading

    mel = np.full((80, 12), -5.0, np.float32)
    buffer = io.BytesIO()
    np.save(buffer, mel)
    body = buffer.getvalue()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - http.server's name
            time.sleep(0.15)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def do_GET(self):  # noqa: N802
            self.do_HEAD()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 64  # 5 by default: a connection past the backlog waits a SYN retry (1 s)

    server = Server(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    rows = [dict(id=f"r{i}", mel_path=f"{url}/m{i}.npy") for i in range(16)]
    manifest = write_manifest(tmp_path / "in.parquet", rows)
    (shard,) = plan_shards(find_manifest_files(str(manifest)), 10**6)
    try:
        started = time.perf_counter()
        rows = list(read_shard_rows(shard, 80))
        took = time.perf_counter() - started
    finally:
        server.shutdown()
    assert [r.error for r in rows] == [None] * 16 and all(np.array_equal(r.mel, mel) for r in rows)
    assert took < 8 * 0.15, f"{took:.2f} s: one GET after another"  # each alone: 2.4 s and more; at once 0.3 s


@pytest.fixture
def silent_port():
    """A port of ours on 127.0.0.1 that takes connections and never answers (a hung store); closed after."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)  # the kernel accepts connections into the backlog; nothing reads or replies
        yield sock.getsockname()[1]


def test_an_endpoint_that_does_not_answer_is_named_in_seconds_with_the_clients_defaults(silent_port, tmp_path):
    """With s3fs's and botocore's defaults (no config_kwargs in io.storage_options) the checks before a job took
    14-17 s to name a closed port and 833 s one that takes connections and never replies (retries of both clients,
    15 s reads). The checks now try such a store once with short waits (storage.CHECK_CONFIG): a closed port (real,
    freed) and a silent one (our own socket) are named in one line with the key, the endpoint and the
    config_kwargs that set the waits, in seconds; the clients the job goes on with keep their retries."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    for port, limit in ((closed, 3.0), (silent_port, 9.0)):
        endpoint = f"http://127.0.0.1:{port}"
        options = dict(endpoint_url=endpoint, key="testing", secret="testing", skip_instance_cache=True)
        # output.dir's write probe on a silent store still waits for s3fs's PUT retries (not fixed yet)
        for key, settings in (("input.manifest", small_job(None, manifest="s3://bvt/mels/", storage_options=options,
                                                           out_dir=str(tmp_path / "out"))),):  # fmt: skip
            started = time.perf_counter()
            try:
                with pytest.raises(ConfigError) as got:
                    quick_checks(settings)
            finally:
                storage.set_options({})
            took = time.perf_counter() - started
            assert took < limit, (port, key, took)
            said = str(got.value)
            assert got.value.key == key and "\n" not in said, said
            assert "cannot connect to the object store" in said and endpoint in said and "endpoint_url" in said, said
            assert "io.storage_options config_kwargs sets them" in said, said

    job_fs, _ = storage.filesystem("s3://bvt/mels/")  # outside the checks: the client's own retries
    assert job_fs.retries == 5 and "read_timeout" not in (job_fs.config_kwargs or {})
