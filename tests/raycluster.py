"""A Ray head node of the test's own: `ray start --head --block` on 127.0.0.1, token authentication on, free ports
picked here, a temp dir of its own; stopped by its own pid (and its own children), never `ray stop`."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

PORT_FLAGS = ("--port", "--dashboard-port", "--ray-client-server-port", "--node-manager-port", "--object-manager-port",
              "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
              "--metrics-export-port")  # fmt: skip


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 now (the OS picks them)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


WORKER_PORTS = 40  # the node's workers get a list of their own (Ray's default range is shared by every cluster)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class _Node:
    """A `ray start --block` process of ours (`process`, with the `children` it started and its `temp_dir`)."""

    process: subprocess.Popen
    temp_dir: Path
    children: list[psutil.Process]

    def kill(self) -> None:
        """SIGKILL the node and every process it started at once (a node lost mid-job); `stop()` still cleans up."""
        self.children += kill_tree(self.process)

    def stop(self) -> None:
        """SIGTERM to our `ray start --block` (it stops its node), then SIGKILL to any of its own children left."""
        self.children += descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        reap(self.children, grace=5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@dataclass
class HeadNode(_Node):
    """A running head: addresses, the token, and the environment a client needs to use them."""

    process: subprocess.Popen
    ports: dict[str, int]
    token_path: Path
    temp_dir: Path
    log: Path
    children: list[psutil.Process] = field(default_factory=list)
    num_cpus: int = 2

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.ports['--dashboard-port']}"

    @property
    def client(self) -> str:
        return f"ray://127.0.0.1:{self.ports['--ray-client-server-port']}"

    @property
    def gcs(self) -> str:
        return f"127.0.0.1:{self.ports['--port']}"

    def client_env(self, **extra: str) -> dict[str, str]:
        """Ray's documented flow for a client: token mode on, the token the head uses (here through its file)."""
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
        return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path), **extra}



def kill_tree(process: subprocess.Popen) -> list[psutil.Process]:
    """SIGKILL `process` (one we started) and every process below it; returns those below it."""
    below = descendants(process.pid)
    process.kill()
    for proc in below:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    process.wait(timeout=10)
    return below


def descendants(pid: int) -> list[psutil.Process]:
    """Every process below `pid` now (what a process we started has started). psutil's handles remember each
    process's start time, so a pid the OS reuses later is never signalled through them."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def reap(procs: list[psutil.Process], grace: float = 10.0) -> None:
    """SIGKILL those of `procs` (taken from our own process tree) still running after `grace` seconds."""
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def still_running(processes: list[tuple[int, float, str]]) -> list[str]:
    """Those of (pid, start time, title) still running as the same process (a reused pid does not count)."""
    alive = []
    for pid, created, title in processes:
        try:
            process = psutil.Process(pid)
            if process.create_time() == created and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {title[:100]}")
        except psutil.NoSuchProcess:
            continue
    return alive


def run_child(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 240.0, **popen) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a child process; whatever it left running is ended (its own descendants)."""
    popen = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) | popen
    proc = subprocess.Popen(args, cwd=cwd, env=env, **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        left = descendants(proc.pid) if proc.poll() is None else []
        proc.kill()
        reap(left)
    return proc.returncode, out, err


def start_head(folder: Path, num_cpus: int = 2, timeout: float = 120.0, env: dict[str, str] | None = None) -> HeadNode:
    """Start a head node with token authentication on; waits until its dashboard and client server listen.
    env: variables for the head's processes, over the ones set here."""
    token_path = folder / "ray_auth_token"
    token_path.write_text(secrets.token_hex(32))
    token_path.chmod(0o600)
    temp_dir = Path(tempfile.mkdtemp(prefix="bvray-"))  # short: Ray's socket paths must fit in 107 bytes
    # one call: every port distinct (ports freed by one call may come back from the next)
    picked = free_ports(len(PORT_FLAGS) + WORKER_PORTS)
    ports = dict(zip(PORT_FLAGS, picked[: len(PORT_FLAGS)], strict=True))
    workers = ",".join(str(p) for p in picked[len(PORT_FLAGS) :])
    ray = str(Path(sys.executable).with_name("ray"))
    cmd = [ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
           "--include-dashboard=true", f"--num-cpus={num_cpus}", "--num-gpus=0", f"--temp-dir={temp_dir}",
           f"--worker-port-list={workers}", "--disable-usage-stats",
           *(f"{flag}={port}" for flag, port in ports.items())]  # fmt: skip
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_path))
    # The client server starts one process per ray:// driver and gives it 30 s to listen; two suites side by side
    # on 2 cores take longer than that ("Initialization failure from server").
    env.setdefault("RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S", "300")
    # The client server forks that process from a thread while its other threads are in gRPC; gRPC's fork handlers
    # then abort the child now and then ("Check failed: next_worker->state == KICKED", ray-project/ray#63202): a
    # ray:// driver failed in 3 of ~20 runs here. Without gRPC's fork support (the child execs at once and needs
    # none) it failed in none of 20.
    env["GRPC_ENABLE_FORK_SUPPORT"] = "0"
    env.update(extra)
    log = folder / "ray_head.log"
    with open(log, "w") as out:
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    head = HeadNode(process, ports, token_path, temp_dir, log, num_cpus=num_cpus)
    deadline = time.time() + timeout
    needed = ("--port", "--dashboard-port", "--ray-client-server-port")
    while not all(_listening(ports[flag]) for flag in needed):
        if process.poll() is not None or time.time() > deadline:
            head.stop()
            raise RuntimeError(f"ray start --head did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    head.children += descendants(process.pid)
    return head


@dataclass
class WorkerNode(_Node):
    """A second node joined to a HeadNode (`ray start --address --block`): `kill()` SIGKILLs it and every process it
    started at once (a node lost mid-job); `stop()` ends what is left."""

    process: subprocess.Popen
    log: Path
    temp_dir: Path
    children: list[psutil.Process] = field(default_factory=list)



def join_node(head: HeadNode, folder: Path, num_cpus: int = 1, timeout: float = 120.0) -> WorkerNode:
    """Start a second node on 127.0.0.1 that joins `head` (its token; a temp dir and free ports of its own, as a
    node on another machine has: with the head's, a submitted job's driver lost its working directory, which
    both nodes' runtime env agents kept in one runtime_resources/); waits until the head counts its CPUs."""
    picked = free_ports(6 + WORKER_PORTS)
    flags = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")  # fmt: skip
    ray = str(Path(sys.executable).with_name("ray"))
    temp_dir = Path(tempfile.mkdtemp(prefix="bvnode-"))
    cmd = [ray, "start", "--block", f"--address={head.gcs}", "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}",
           "--num-gpus=0", f"--temp-dir={temp_dir}", "--disable-usage-stats",
           f"--worker-port-list={','.join(str(p) for p in picked[6:])}",
           *(f"{flag}={port}" for flag, port in zip(flags, picked[:6], strict=True))]  # fmt: skip
    env = head.client_env(GRPC_ENABLE_FORK_SUPPORT="0")
    log = folder / "ray_node.log"
    with open(log, "w") as out:
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    node = WorkerNode(process, log, temp_dir)
    status = [ray, "status", f"--address={head.gcs}"]
    deadline = time.time() + timeout
    while True:
        if process.poll() is not None or time.time() > deadline:
            node.stop()
            raise RuntimeError(f"ray start --address did not join:\n{log.read_text()[-3000:]}")
        shown = subprocess.run(status, env=env, capture_output=True, text=True, timeout=60).stdout
        if f"/{head.num_cpus + num_cpus}.0 CPU" in shown:
            break
        time.sleep(1)
    node.children += descendants(process.pid)
    return node
