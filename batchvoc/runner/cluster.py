"""Ray: start a local cluster or join one, and decide how many workers it gets and what each reserves."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import ray
from ray._private import ray_constants
from ray.exceptions import AuthenticationError

from batchvoc.errors import ConfigError, first_line
from batchvoc.runner import auth, worker_logs
from batchvoc.runner.interrupts import terminate_as_interrupt

log = logging.getLogger(__name__)

# Ray's processes retry connecting to a socket not yet listening every raylet_client_connect_timeout_milliseconds
# (1 s). The raylet connects to its object store as the store starts, and lost that race in about half of the
# local starts measured: ray.init took 1.0 s longer. Retrying every 0.1 s, 10x as many times, keeps the 10 s of
# patience.
LOCAL_SYSTEM_CONFIG = {"raylet_client_connect_timeout_milliseconds": 100, "raylet_client_num_connect_attempts": 100}
# A head's Ray client server starts a process per ray:// driver and, now and then, that process dies as it starts
# (ray-project/ray#63202: gRPC's fork handlers abort it; ~7% of connections there, 3 of ~20 in our tests). The
# driver is told so (these words, in util/client/server/proxier.py) and connects again.
# how the loss shows: at the first connect, or (under load) as the client's session found cleaned up on reconnecting
CLIENT_SERVER_FAULTS = ("Starting Ray client server failed", "Proxy failed to Connect to backend",
                        "Attempted to reconnect a session that has already been cleaned up")  # fmt: skip
CLIENT_ATTEMPTS = 3
# An existing cluster's endpoint gets this long to accept a TCP connection before ray.init is handed its address:
# ray.init(host:port) on a port nothing answers retries its GCS connection for ~14 min (20 attempts of ~41 s), and a
# ray:// client gives up after ~30 s.
PROBE_TIMEOUT_S = 5.0
# ray.init(host:port)'s attempts at the GCS connection (Ray's RAY_gcs_server_port_wait_time_s, read at each ray.init;
# 20 by default, each ~41 s where the endpoint accepts connections but is no GCS): one is enough for a GCS that
# answers, and bounds a wrong endpoint to ~41 s. A value the user set is kept.
GCS_CONNECT_ATTEMPTS = "1"
# How long `RayThread.close` waits for a start still under way once the job is interrupted (Ctrl-C): a local Ray's
# start and shutdown take ~5 s; a start that is stuck (an endpoint that does not answer) is left to die with the
# process.
INTERRUPTED_WAIT_S = 5.0
# what cluster.address takes to join a cluster, as the messages of a cluster not reached say it
NO_CLUSTER_FOUND = "Could not find any running Ray instance"  # ray.init("auto")'s words where none was started
ADDRESS_FORMS = (
    "host:port (a head's GCS port, `ray start --head --port`, 6379 by default), ray://host:port (its Ray client "
    "server, 10001 by default) or auto (the cluster `ray start` ran on this machine)"
)


@dataclass(frozen=True)
class ActorPlan:
    """How many workers to start and the Ray resources each reserves."""

    count: int
    num_gpus: float
    num_cpus: float

    @property
    def options(self) -> dict:
        return {"num_gpus": self.num_gpus, "num_cpus": self.num_cpus}

    @property
    def threads(self) -> int:
        return max(int(self.num_cpus), 1)


def connect(address: str) -> bool:
    """Join cluster.address (`auto`, host:port or ray://host:port), the cluster `ray job submit` names (RAY_ADDRESS),
    or start a local one.

    Token authentication (Ray 2.52+) as runner/auth.py describes. Raises ConfigError on cluster.address when the
    cluster cannot be reached (an endpoint that does not accept a TCP connection within PROBE_TIMEOUT_S: before
    ray.init; one that does but is no GCS: after one GCS connect attempt, ~41 s) or refuses our token. Returns True
    when it started a local cluster (the caller shuts it down). Call it from a thread that lives as long as the
    cluster: Ray ties a local cluster's processes to the thread that started them (PR_SET_PDEATHSIG).
    """
    if ray.is_initialized():
        return False
    local = False
    submitted = bool(os.environ.get("RAY_ADDRESS"))
    if address:
        check_answers(address, f"{address!r}")
    elif submitted:
        check_answers(os.environ["RAY_ADDRESS"], f"RAY_ADDRESS={os.environ['RAY_ADDRESS']!r}")
    if address or submitted:
        auth.for_existing_cluster()
    else:
        auth.for_local_cluster()
    try:
        if address.startswith("ray://"):
            _join_as_client(address)
        elif address:
            with _bounded_gcs_connect():
                ray.init(address=address, log_to_driver=True)
        elif submitted:
            with _bounded_gcs_connect():
                ray.init(log_to_driver=True)  # under `ray job submit`: the job's own cluster
        else:
            # a copy: Ray writes its object spilling settings into the dict, and a second job (a sweep) would pass them
            # back as if set by us (Ray then warns of an unstable API)
            config = dict(LOCAL_SYSTEM_CONFIG)
            ray.init(address="local", include_dashboard=False, log_to_driver=True, _system_config=config)
            local = True
    except AuthenticationError as err:
        auth.restore()
        raise ConfigError(
            "cluster.address", f"the Ray cluster at {address or 'RAY_ADDRESS'} refused us: {auth.HOW}"
        ) from err
    except (ConnectionError, RuntimeError, ValueError) as err:
        hint = unreachable_hint(err, address)
        auth.restore()
        message = f"cannot reach the Ray cluster at {address!r}: {first_line(err)}{hint}"
        raise ConfigError("cluster.address", message) from err
    return local


def unreachable_hint(err: Exception, address: str) -> str:
    """What to check, in parentheses, after Ray's own reason for not joining the cluster at `address` ("" where
    there is nothing to add)."""
    hint = ""
    if _lost_its_server(err):
        hint = (f" (the head's Ray client server could not start a server process for this driver, "
                f"{CLIENT_ATTEMPTS} times: see ray_client_server*.err in the head's Ray logs)")  # fmt: skip
    elif address.startswith("ray://") and os.environ.get(auth.MODE, "").lower() == "token":
        hint = f" (a Ray client with a token the cluster does not accept times out like this: {auth.HOW})"
    elif isinstance(err, ConnectionError) and NO_CLUSTER_FOUND in str(err):
        # auto: Ray found no cluster's address on this machine; nothing was asked, so nothing refused us
        hint = (
            " (auto finds only a cluster that `ray start --head` runs on this machine: start one, or set "
            "cluster.address to the head's host:port or ray://host:port; leave it empty for a local Ray)"
        )
    elif isinstance(err, ConnectionError) and not address.startswith("ray://"):
        # a head with token authentication refuses a missing or wrong token with this same error (its reason,
        # InvalidAuthToken, reaches only Ray's own log), as does a port that is no GCS
        hint = (f" (it answers, but no Ray head let us in: a head with token authentication refuses a "
                f"missing or wrong token: {auth.HOW}; or the address is not a head's: check that it is "
                f"{ADDRESS_FORMS})")  # fmt: skip
    return hint


def endpoint(address: str) -> tuple[str, int] | None:
    """The (host, port) an existing cluster's address names: host:port (a head's GCS) or ray://host:port (its Ray
    client server), a trailing path or query ignored, IPv6 hosts in brackets; None for `auto`, `local` and any form
    without a port (Ray resolves or refuses those itself)."""
    text = address.strip()
    if text.startswith("ray://"):
        text = text[len("ray://") :]
    elif "://" in text:
        return None
    text = text.split("/", 1)[0].split("?", 1)[0]
    try:
        parts = urlsplit(f"//{text}")
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is no number, or out of range
        return None
    return (host, port) if host and port else None


def check_answers(address: str, named: str) -> None:
    """ConfigError on cluster.address where the endpoint of an existing cluster's `address` (`named` so in the
    message) does not accept a TCP connection within PROBE_TIMEOUT_S; nothing for addresses without one (auto)."""
    where = endpoint(address)
    if where is None:
        return
    host, port = where
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return
    except OSError as err:
        if isinstance(err, TimeoutError):
            reason = f"no answer within {PROBE_TIMEOUT_S:g} s"
        else:
            reason = (err.strerror or type(err).__name__).lower()
        raise ConfigError("cluster.address", f"nothing answers at {named} ({host}:{port}: {reason}): check that the "
                          f"Ray head is running and reachable from here, and that the address is {ADDRESS_FORMS}; "
                          "leave cluster.address empty for a local Ray") from None  # fmt: skip


@contextmanager
def _bounded_gcs_connect() -> Iterator[None]:
    """ray.init(host:port) tries its GCS connection once (GCS_CONNECT_ATTEMPTS) unless the user chose otherwise."""
    name = "RAY_gcs_server_port_wait_time_s"
    if name in os.environ:
        yield
        return
    os.environ[name] = GCS_CONNECT_ATTEMPTS
    try:
        yield
    finally:
        os.environ.pop(name, None)


# A joined cluster's head (its GCS) that has not taken a TCP connection for this long is lost: the job stops then,
# writing its summary, before Ray ends the driver itself (its GCS client gives up after 60 s,
# gcs_rpc_server_reconnect_timeout_s, with no word from batchvoc and no summary.json).
HEAD_LOST_S = 15.0
HEAD_PROBE_S = 1.0
HEAD_LOST = "lost the Ray cluster's head"  # how summary.json's stopped_early begins then


class HeadWatch:
    """Probes a joined cluster's GCS port every HEAD_PROBE_S on a daemon thread; `lost()` says why the head counts
    as lost (no connection taken for HEAD_LOST_S), else None. Workers on other nodes may still be running then,
    but nothing new can be scheduled and Ray ends this driver within a minute."""

    def __init__(self, address: str, lost_after: float = HEAD_LOST_S) -> None:
        self.address, self._lost_after = address, lost_after
        self._since: float | None = None  # monotonic time of the first failed probe in a row
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="head-watch", daemon=True)

    @classmethod
    def of_this_driver(cls) -> HeadWatch | None:
        """A started watch of the GCS this driver is connected to; None for a Ray client (ray://: its server is
        on the head and says so itself) or where the address is not known."""
        if ray.util.client.ray.is_connected():
            return None
        where = endpoint(ray.get_runtime_context().gcs_address or "")
        if where is None:
            return None
        watch = cls(f"{where[0]}:{where[1]}")
        watch._thread.start()
        return watch

    def lost(self) -> str | None:
        return self._lost

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        host, port = self.address.rsplit(":", 1)
        while not self._stop.wait(HEAD_PROBE_S) and self._lost is None:
            try:
                with socket.create_connection((host, int(port)), timeout=HEAD_PROBE_S):
                    self._since = None
                    continue
            except OSError as err:
                reason = (err.strerror or type(err).__name__).lower()
            now = time.monotonic()
            self._since = self._since or now
            if now - self._since >= self._lost_after:
                self._lost = (f"{HEAD_LOST}: its GCS at {self.address} has taken no connection for "
                              f"{self._lost_after:g} s ({reason}); the same command resumes the job once the "
                              "cluster is back (or against a new head)")  # fmt: skip


def announce() -> None:
    """Log the resources of the cluster this process is connected to."""
    log.info("Ray cluster: %s", ray.cluster_resources())


def _join_as_client(address: str) -> None:
    """ray.init(ray://...), again where the head's client server lost the process it started for us."""
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            ray.init(address=address, log_to_driver=True)
            return
        except ConnectionError as err:
            if attempt == CLIENT_ATTEMPTS or not _lost_its_server(err):
                raise
            log.warning("the Ray client server at %s lost the process it started for this driver "
                        "(ray-project/ray#63202); connecting again (attempt %d of %d)",
                        address, attempt + 1, CLIENT_ATTEMPTS)  # fmt: skip


def _lost_its_server(err: BaseException) -> bool:
    """Whether a ray:// connection failed because the head's client server lost the process it started for us."""
    return any(fault in str(err) for fault in CLIENT_SERVER_FAULTS)


class RayThread:
    """`connect(address)` on a thread of its own, begun before the job's heavy imports and checks so that Ray's
    start (~5 s) overlaps them. The thread lives until `close()`: Ray ties a local cluster's processes to the
    thread that started them (PR_SET_PDEATHSIG), so it must outlive the job's use of the cluster.

        ray_thread = RayThread(address)      # returns at once
        started_local = ray_thread.wait()    # connect's result or its ConfigError
        ...; disconnect(); ray_thread.close()
    """

    def __init__(self, address: str) -> None:
        self._closing = threading.Event()
        # what ray.init does for a driver in the main thread, as a Ctrl-C: SIGTERM ends the job through its cleanup
        terminate_as_interrupt()
        self._quiet = _QuietStart(self._closing)
        logging.getLogger("ray._private.worker").addFilter(self._quiet)
        self._result: Future[bool] = Future()
        self.begun_at = time.time()  # epoch seconds
        self.ready_at: float | None = None  # epoch seconds at which Ray was up
        self._thread = threading.Thread(target=self._run, args=(address,), name="ray-start", daemon=True)
        self._thread.start()

    def _run(self, address: str) -> None:
        try:
            started_local = connect(address)
            self.ready_at = time.time()
            if not self._closing.is_set():  # closed already: the job stopped before it needed Ray; say nothing
                announce()
            self._result.set_result(started_local)
        except BaseException as err:  # noqa: BLE001 - handed to wait()'s caller
            self._result.set_exception(err)
            return
        self._closing.wait()
        disconnect()  # a no-op where the job already shut Ray down; else (the job never ran) leave nothing behind

    def wait(self) -> bool:
        """connect's result: True when a local cluster was started. Raises what connect raised (ConfigError)."""
        return self._result.result()

    def close(self, timeout: float | None = None) -> None:
        """Let the thread end, shutting down (or leaving) Ray where the job has not. `timeout`: at most this many
        seconds (an interrupted job: INTERRUPTED_WAIT_S); a start still under way then is left to end with the
        process (the thread is a daemon: it holds nothing the process's exit waits for)."""
        self._closing.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("Ray's start did not end within %g s; leaving it to end with this process", timeout)
        logging.getLogger("ray._private.worker").removeFilter(self._quiet)


class _QuietStart(logging.Filter):
    """Drops ray.init's warning that a non-main thread cannot set the SIGTERM handler (RayThread sets it), and its
    notice of a local Ray started once the job has stopped without it (its own error is the job's last word)."""

    def __init__(self, closing: threading.Event) -> None:
        super().__init__()
        self.closing = closing

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not (text.startswith("SIGTERM handler is not set") or self.closing.is_set() and "Started a" in text)


def disconnect() -> None:
    """Shut down (or leave) the Ray this process connected to, and put the environment back as it was."""
    if ray.is_initialized():
        worker_logs.flush()  # repeated worker lines Ray still counts, logged, not printed by ray.shutdown()
        _end_autoscaler_monitor()
        ray.shutdown()
    auth.restore()


def _end_autoscaler_monitor() -> None:
    """SIGKILL the autoscaler monitor of a local cluster this process started, just before ray.shutdown().

    ray.shutdown() stops the node's processes one after another, raylet and GCS first; the monitor's SIGTERM
    handler then tries to report its own end to the GCS, which is gone, and Ray SIGKILLs it after a 1 s wait: a
    job's end was ~1.0 s longer. A single local node never scales, so the monitor has nothing to save. Ray offers
    no public call for this; its node's process list names the monitor (the list is empty for a cluster joined)."""
    node = ray._private.worker._global_node
    processes = node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []) if node is not None else []
    for info in processes:
        if info.process.poll() is None:
            info.process.kill()


def plan_actors(cpu_actors: int) -> ActorPlan:
    """One worker per GPU; where the cluster has none, `cpu_actors` workers sharing its CPUs."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return ActorPlan(count=gpus, num_gpus=1, num_cpus=1)
    cpus = max(int(resources.get("CPU", 1)), 1)
    if cpu_actors > cpus:
        raise ConfigError("cluster.cpu_actors", f"{cpu_actors} CPU actors asked for, the cluster has {cpus} CPUs")
    return ActorPlan(count=cpu_actors, num_gpus=0, num_cpus=cpus // cpu_actors)
