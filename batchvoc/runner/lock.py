"""One job per output.dir: an exclusive lock file, `.batchvoc.lock`, holding the owner's pid, host and token.

Local folders: the lock is an `flock` on the file, which the kernel drops when the owning process dies (a
SIGKILLed driver included), so a stale lock cannot block a rerun; the pid and host inside name the owner in the
refusal. Where the file system refuses `flock`, and on object stores, the lock is a lease instead: the file is
created only if absent (an S3 conditional PUT, `If-None-Match: *`, where the store supports it), renewed by a
thread while the job runs, and taken over when it is stale — its pid is dead on this host, or its lease expired
(`lease_s` after its last renewal). On stores without conditional writes the lease is best effort: two jobs
started within the same second may both get it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from batchvoc.errors import ConfigError
from batchvoc.storage import Store, describe, is_store_error

log = logging.getLogger(__name__)
LOCK = ".batchvoc.lock"
LEASE_S = 120.0
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


class JobLock:
    """Exclusive ownership of output.dir for one job; a context manager. `token` marks the job's temp files."""

    def __init__(self, store: Store, lease_s: float = LEASE_S, use_flock: bool = True):
        self.store, self.lease_s, self.use_flock = store, lease_s, use_flock
        self.token = uuid.uuid4().hex[:12]
        self._fd: int | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> JobLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def info(self) -> dict[str, Any]:
        return dict(pid=os.getpid(), host=socket.gethostname(), token=self.token, started=_now(),
                    renewed=time.time(), lease_s=self.lease_s, proc_start=_proc_start(os.getpid()))  # fmt: skip

    def acquire(self) -> None:
        """Take the lock, or raise ConfigError (key output.dir) naming the job that holds it."""
        if self.store.local and self.use_flock:
            try:
                self._acquire_flock()
                return
            except OSError as err:
                if err.errno not in _NO_FLOCK:
                    raise
                log.warning("%s: no flock on this file system (%s); using a lease lock", self.store.url, err)
        self._acquire_lease()
        self._renewer = threading.Thread(target=self._renew, name="batchvoc-lock", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        try:
            if self._fd is not None:
                Path(self.store.path(LOCK)).unlink(missing_ok=True)  # still ours: we hold the flock
                os.close(self._fd)
            elif self._holder().get("token") == self.token:
                self.store.remove(LOCK)
        except Exception as err:  # an object store's client raises its own (EndpointConnectionError), not OSError
            if not is_store_error(err):
                raise
            log.warning("could not remove the job lock %s: %s", self.store.path(LOCK), describe(err, self.store.url))
        self._fd = None

    # ---- flock (local folders) ------------------------------------------------------------------------
    def _acquire_flock(self) -> None:
        path = self.store.path(LOCK)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise _held(self.store, self._holder(), "") from None
            except OSError:
                os.close(fd)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file its last owner unlinked between our open and our flock
                break
            os.close(fd)
        previous = _parse(os.read(fd, 1 << 16))
        if previous.get("pid"):
            log.info("job lock: the last job on %s (pid %s on %s) has ended", self.store.url, previous["pid"],
                     previous.get("host"))  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self.info(), indent=2).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    # ---- lease (object stores, file systems without flock) ----------------------------------------------
    def _acquire_lease(self) -> None:
        data = json.dumps(self.info(), indent=2).encode()
        if self._create(data):
            return
        holder = self._holder()
        why = _stale(holder)
        if not why:
            raise _lease_held(self.store, holder)
        log.warning("job lock on %s: taking over a stale lock (%s)", self.store.url, why)
        self.store.write_bytes(LOCK, data)
        time.sleep(0.5)  # best effort: whoever wrote last owns it; the other sees another token and refuses
        if self._holder().get("token") != self.token:
            raise _held(self.store, self._holder(), "")

    def _create(self, data: bytes) -> bool:
        """Write the lock file only if there is none; False if there is one."""
        path = self.store.path(LOCK)
        if self.store.local:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            return True
        try:
            self.store.fs.pipe_file(path, data, mode="create")  # S3: If-None-Match: *
            return True
        except FileExistsError:
            return False
        except (TypeError, NotImplementedError, ValueError):  # a store without exclusive writes: best effort
            if self.store.exists(LOCK):
                return False
            self.store.write_bytes(LOCK, data)
            return True

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            try:
                holder = self._holder()
                if holder.get("token") != self.token:
                    log.error("job lock on %s was taken by pid %s on %s; this job no longer owns output.dir",
                              self.store.url, holder.get("pid"), holder.get("host"))  # fmt: skip
                    return
                holder["renewed"] = time.time()
                self.store.write_bytes(LOCK, json.dumps(holder, indent=2).encode())
            except Exception as err:  # noqa: BLE001 - as release's: a store's client error, or the thread dies loud
                if not is_store_error(err):
                    raise
                log.warning("could not renew the job lock on %s: %s", self.store.url, describe(err, self.store.url))

    def _holder(self) -> dict[str, Any]:
        return _holder_of(self.store)


def refuse_if_held(store: Store) -> None:
    """ConfigError (key output.dir) naming the job that holds output.dir's lock now; takes nothing. The quick checks'
    probe, so that a second job stops before Ray starts and the weights are read (12.6 s later on a 2-core CPU);
    the job takes the lock itself later (JobLock), which stays the guard against a job starting in between."""
    if store.local:
        try:
            fd = os.open(store.path(LOCK), os.O_RDONLY)
        except OSError:  # no lock file, or none readable: the job's own acquire says what is wrong
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _held(store, _holder_of(store), "") from None
        except OSError:  # no flock on this file system: a lease, read below
            pass
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return  # not held: a flock dies with its owner, whatever the file says
        finally:
            os.close(fd)
    holder = _holder_of(store)
    if holder and not _stale(holder):
        raise _lease_held(store, holder)


def _holder_of(store: Store) -> dict[str, Any]:
    """What output.dir's lock file says (pid, host, token, ...); {} where there is none or it cannot be read."""
    try:
        return _parse(store.read_bytes(LOCK))
    except OSError:
        return {}


def _stale(holder: dict[str, Any]) -> str:
    """Why a lease lock is stale ("" when it is live)."""
    if not holder:
        return "unreadable lock file"
    if holder.get("host") == socket.gethostname() and holder.get("pid"):
        pid = int(holder["pid"])
        if not _alive(pid) or (holder.get("proc_start") and _proc_start(pid) != holder["proc_start"]):
            return f"pid {pid} on this host has ended"
    age = time.time() - float(holder.get("renewed", 0))
    if age > float(holder.get("lease_s", LEASE_S)):
        return f"not renewed for {age:.0f} s"
    return ""


def _held(store: Store, holder: dict[str, Any], extra: str) -> ConfigError:
    who = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started {holder.get('started', '?')}"
    return ConfigError("output.dir", f"another batchvoc job ({who}) is writing to {store.url}; nothing was done. "
                       f"Wait for it to end, or use another output.dir{extra}.")  # fmt: skip


def _lease_held(store: Store, holder: dict[str, Any]) -> ConfigError:
    return _held(store, holder, f"; the lock lapses {holder.get('lease_s', '?')} s after its last renewal")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart), where /proc has it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _parse(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
