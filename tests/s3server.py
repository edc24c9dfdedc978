"""moto's standalone S3 server on 127.0.0.1 for the tests: a subprocess of ours on a free port, stopped by its pid.

Import the fixture into a test module: `from tests.s3server import s3_server  # noqa: F401`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class S3Server:
    endpoint: str
    pid: int

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client (a batchvoc subprocess, its Ray actors) at this server."""
        return dict(AWS_ENDPOINT_URL=self.endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                    AWS_DEFAULT_REGION="us-east-1")  # fmt: skip

    @property
    def storage_options(self) -> dict[str, str]:
        """The same as `io.storage_options`, for processes whose environment we do not set (a shared Ray)."""
        return dict(endpoint_url=self.endpoint, key="testing", secret="testing")

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options, use_listings_cache=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """moto_server on a free port; `env` adds to its environment (INITIAL_NO_AUTH_ACTION_COUNT=0: it checks keys)."""
    binary = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    for _ in range(5):  # another process may take the free port between our probe and the server's bind
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log.open("wb"),
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})  # fmt: skip
        deadline = time.time() + 30
        while time.time() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                return proc, endpoint
            except urllib.error.HTTPError:  # it answered (a server checking keys refuses a request without any)
                return proc, endpoint
            except OSError:
                time.sleep(0.2)
        _stop(proc)
    raise RuntimeError(f"moto_server did not start; its log: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    pytest.importorskip("s3fs")
    if not (shutil.which("moto_server") or Path(sys.executable).with_name("moto_server").exists()):
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    proc, endpoint = _start(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield S3Server(endpoint, proc.pid)
    finally:
        _stop(proc)
