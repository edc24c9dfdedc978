"""Jobs on a Ray cluster with token authentication on: a real `ray start --head` of the test's own (127.0.0.1, free
ports, its own temp dir and token), `jobs/submit.py` over the dashboard and `cluster.address=ray://` from a driver."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.jobs import closing_line, read_summary
from tests.raycluster import start_head
from tests.runner.test_driver import three_files

ROOT = Path(__file__).resolve().parent.parent
SMALL = ("job=hifigan_v1", "model.checkpoint=random", "+model.hparams.upsample_initial_channel=32",
         "engine.backend=eager", "engine.batch=2")  # fmt: skip
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    node = start_head(tmp_path_factory.mktemp("head"))
    yield node
    node.stop()


@pytest.fixture
def client_ports():
    """Ray's client server gives each ray:// driver a process on a port of one machine-wide range (23000-24000,
    util/client/server/proxier.py), checked free and then bound seconds later: two suites' heads on one machine
    handed out the same port and one driver never connected. The tests that connect through ray:// take turns
    across processes (a lock file in the temp dir; it only orders them)."""
    from filelock import FileLock

    with FileLock(Path(tempfile.gettempdir()) / "batchvoc-tests-ray-client-ports.lock", timeout=1800):
        yield


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in")
    three_files(folder, rows=6)
    return folder


def no_pip_runtime_env(folder: Path) -> Path:
    """jobs/runtime_env.yaml without its pip list: the head runs in this venv already (and has no network)."""
    env = yaml.safe_load((ROOT / "jobs" / "runtime_env.yaml").read_text())
    env.pop("pip", None)
    path = folder / "runtime_env.yaml"
    path.write_text(yaml.safe_dump(env))
    return path


def submit(head, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "jobs" / "submit.py"), "--address", head.dashboard, *args]
    return subprocess.run(cmd, cwd=ROOT, env=env or head.client_env(), capture_output=True, text=True, timeout=600)


def test_submit_with_the_heads_token_runs_the_job(head, manifest, tmp_path):
    out = tmp_path / "out"
    env = head.client_env()
    env.pop("RAY_AUTH_MODE")  # the token alone is enough: submit.py turns token mode on when it finds one
    result = submit(head, "--runtime-env", str(no_pip_runtime_env(tmp_path)), "--", *SMALL,
                    f"input.manifest={manifest}", f"output.dir={out}", env=env)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = read_summary(out)
    assert summary.rows_ok == 6 and summary.rows_failed == 0
    assert "\x1b[" not in result.stdout  # the job's log (redirected on the head) holds no colour codes
    assert "Token authentication is enabled" not in result.stdout


def test_submit_without_the_token_is_refused_in_one_line(head, manifest, tmp_path):
    env = head.client_env(RAY_AUTH_TOKEN="0" * 64)  # RAY_AUTH_TOKEN wins over the head's token file
    result = submit(head, "--runtime-env", str(no_pip_runtime_env(tmp_path)), "--", *SMALL,
                    f"input.manifest={manifest}", f"output.dir={tmp_path / 'out'}", env=env)  # fmt: skip
    assert result.returncode == 1
    assert "refused our token" in result.stderr and "RAY_AUTH_TOKEN" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "out").exists()


def test_submit_without_output_dir_is_refused_before_submitting(head, manifest):
    result = submit(head, "--", *SMALL, f"input.manifest={manifest}")
    assert result.returncode == 1 and "output.dir" in result.stderr and "submitted" not in result.stdout


SUBMIT_AND_WAIT = """
import json, sys, time
from ray.job_submission import JobStatus, JobSubmissionClient
client = JobSubmissionClient(sys.argv[1])
job_id = client.submit_job(entrypoint=sys.argv[2], runtime_env=json.loads(sys.argv[3]))
while client.get_job_status(job_id) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
    time.sleep(1)
print(client.get_job_status(job_id).value)
print(client.get_job_logs(job_id))
"""


def test_a_submitted_job_without_output_dir_refuses_on_the_cluster(head, manifest, tmp_path):
    """Submitted past jobs/submit.py (Ray's own client, in a process of its own so no token is cached here): the
    driver refuses the default, relative output.dir on the head."""
    env = yaml.safe_load(no_pip_runtime_env(tmp_path).read_text())
    env["working_dir"] = str(ROOT)
    entrypoint = f"python -m batchvoc job=hifigan_v1 input.manifest={manifest}"
    cmd = [sys.executable, "-c", SUBMIT_AND_WAIT, head.dashboard, entrypoint, json.dumps(env)]
    result = subprocess.run(cmd, cwd=tmp_path, env=head.client_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    status, logs = result.stdout.split("\n", 1)
    assert status == "FAILED", result.stdout[-2000:]
    assert "batchvoc: cannot run: output.dir: a submitted job needs output.dir=PATH" in logs, logs[-2000:]
    assert not list(head.temp_dir.rglob("outputs"))  # nothing written into Ray's copy of the working dir


def test_a_driver_joins_with_ray_client_and_the_token(head, manifest, tmp_path, client_ports):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "batchvoc", *SMALL, f"input.manifest={manifest}", f"output.dir={out}",
           f"cluster.address={head.client}"]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, env=head.client_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = read_summary(out)
    assert summary.rows_ok == 6 and summary.actors >= 1
    log = next((out / "logs").rglob("batchvoc.log")).read_text()
    assert f"batchvoc: {closing_line(summary)}; " in log  # the final summary line reaches the job's log file
    assert "\x1b[" not in result.stdout + result.stderr  # the head colours worker logs; a pipe gets them plain


def test_a_ray_client_with_a_wrong_token_stops_naming_cluster_address(head, manifest, tmp_path, client_ports):
    cmd = [sys.executable, "-m", "batchvoc", *SMALL, f"input.manifest={manifest}", f"output.dir={tmp_path / 'out'}",
           f"cluster.address={head.client}"]  # fmt: skip
    env = head.client_env(RAY_AUTH_TOKEN="0" * 64)
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("batchvoc: cannot run:")]
    assert line.startswith("batchvoc: cannot run: cluster.address: ") and "RAY_AUTH_TOKEN" in line, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("token", ["0" * 64, None])
def test_a_wrong_or_missing_token_at_a_gcs_address_stops_naming_cluster_address_and_the_token(head, manifest, tmp_path,
                                                                                             token):  # fmt: skip
    """host:port (the head's GCS) with a token the head does not accept, or none: one line naming cluster.address
    that says how to give the token (Ray's error alone reads like an address that is no Ray head)."""
    cmd = [sys.executable, "-m", "batchvoc", *SMALL, f"input.manifest={manifest}", f"output.dir={tmp_path / 'out'}",
           f"cluster.address={head.gcs}"]  # fmt: skip
    env = head.client_env(RAY_AUTH_TOKEN=token)
    if token is None:  # nothing to send: neither token mode nor a token file
        env = {k: v for k, v in env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token of the machine's to find
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("batchvoc: cannot run:")]
    assert line.startswith("batchvoc: cannot run: cluster.address: ") and "RAY_AUTH_TOKEN" in line, result.stderr
    assert "Traceback" not in result.stderr


def test_the_runtime_env_leaves_dev_folders_out_of_submissions(tmp_path):
    """jobs/runtime_env.yaml's excludes, matched by Ray's own packaging code on a tree shaped like a dev checkout."""
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    product = ["batchvoc/__main__.py", "batchvoc/conf/config.yaml", "batchvoc/conf/preset/gsv_v4.yaml",
               "jobs/submit.py", "benchmarks/jobs.py", "pyproject.toml", "README.md"]  # fmt: skip
    dev = ["bench_results/run9/raw.json", "benchmarks/out/bench.json", "benchmarks/ready.log", "outputs/demo/a.wav",
           ".venv/bin/python", ".venv-ci/bin/python", ".wt-h1/batchvoc/x.py", "multirun/0/summary.json",
           "bench.json", ".git/HEAD", "batchvoc/__pycache__/x.pyc", "data/m.parquet",
           "batchvoc.egg-info/PKG-INFO"]  # fmt: skip
    for name in product + dev:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    excludes = yaml.safe_load((ROOT / "jobs" / "runtime_env.yaml").read_text())["excludes"]
    travelled = []
    _dir_travel(tmp_path, [_get_excludes(tmp_path, excludes)],
                lambda p: travelled.append(p.relative_to(tmp_path).as_posix()) if p.is_file() else None,
                include_gitignore=False)  # fmt: skip
    assert sorted(travelled) == sorted(product)
