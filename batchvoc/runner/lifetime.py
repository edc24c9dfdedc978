"""Every process a job starts ends with it, a SIGKILLed driver included.

A local Ray (`ray.init(address="local")`) fate-shares what the driver starts itself (GCS, raylet, dashboard,
monitors: Linux PR_SET_PDEATHSIG), but the raylet's two agents (dashboard agent, runtime-env agent) outlive a
SIGKILLed driver by 60-90 s: they notice the raylet is gone, then block reporting it to the dead GCS
(`process_watcher.report_raylet_error_logs`, a 60 s publish timeout), and Ray has no option to shorten that.

`SessionGuard` closes the gap: a small process of its own session, fed the driver's descendants (pid and start
time) through a pipe; when the pipe closes (the driver ended, however it ended) it SIGKILLs those still alive.
Processes are matched by pid *and* start time, so a recycled pid is never touched, and only descendants of the
driver are ever listed: the guard cannot signal a process the job did not start.

    guard = SessionGuard.start()   # after ray.init of a local cluster (a guard started earlier sees nothing)
    guard.watch()                   # again whenever new processes may have appeared (actors started)
    guard.close()                   # after ray.shutdown(): leftovers are killed now
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import psutil

log = logging.getLogger(__name__)


class SessionGuard:
    """The driver's side: a pipe to the guard process, written with the processes to end with the driver."""

    def __init__(self, process: subprocess.Popen):
        self._process = process
        self._sent: set[tuple[int, float]] = set()

    @classmethod
    def start(cls) -> SessionGuard:
        """Start the guard (its own session, so a terminal's Ctrl-C does not end it first) and list what the
        driver has started so far."""
        process = subprocess.Popen(
            [sys.executable, "-m", "batchvoc.runner.lifetime"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, text=True,
        )  # fmt: skip
        guard = cls(process)
        guard.watch()
        return guard

    @property
    def pid(self) -> int:
        return self._process.pid

    def watch(self) -> int:
        """Send the driver's current descendants (not the guard) to the guard; returns how many are new."""
        new = []
        for child in psutil.Process().children(recursive=True):
            try:
                key = (child.pid, child.create_time())
            except psutil.NoSuchProcess:
                continue
            if child.pid != self.pid and key not in self._sent:
                new.append(key)
        if new and self._process.stdin is not None:
            try:
                self._process.stdin.write("".join(f"{pid} {created!r}\n" for pid, created in new))
                self._process.stdin.flush()
            except (BrokenPipeError, ValueError):  # the guard is gone: nothing more to tell it
                return 0
            self._sent.update(new)
        return len(new)

    def close(self, timeout: float = 10.0) -> None:
        """Close the pipe (the guard kills what is left of the listed processes) and wait for it to exit."""
        if self._process.stdin is not None and not self._process.stdin.closed:
            try:
                self._process.stdin.close()
            except (BrokenPipeError, OSError):  # the guard is gone already: nothing to tell it
                pass
        if self._process.poll() not in (None, 0):
            log.warning("the process guard (pid %d) had exited (code %s): processes this job started may outlive "
                        "it", self.pid, self._process.returncode)  # fmt: skip
            return
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the process guard (pid %d) did not exit in %.0f s", self.pid, timeout)


def _read_listed(stream) -> list[tuple[int, float]]:
    """Lines `pid start_time` until EOF (the driver's end)."""
    listed = []
    for line in stream:
        pid, created = line.split()
        listed.append((int(pid), float(created)))
    return listed


def end_processes(listed: list[tuple[int, float]]) -> list[int]:
    """SIGKILL each listed process still alive with the same start time; returns the pids killed."""
    killed = []
    for pid, created in listed:
        try:
            process = psutil.Process(pid)
            if abs(process.create_time() - created) > 1e-3:
                continue  # the pid was recycled: not ours
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except (psutil.NoSuchProcess, ProcessLookupError, PermissionError):
            continue
    return killed


def main() -> None:
    """The guard: wait for the driver's pipe to close, then end what it listed."""
    end_processes(_read_listed(sys.stdin))


if __name__ == "__main__":
    main()


def process_started_at() -> float:
    """When this process started (epoch seconds): startup_s counts from here, imports included. On Linux from the
    kernel's start time in clock ticks since boot against CLOCK_BOOTTIME (10 ms steps); psutil's create_time adds
    the boot time, which the kernel gives in whole seconds (up to ~1 s off)."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, after the command's parentheses
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - since_boot
    except (OSError, ValueError, IndexError, AttributeError):
        return psutil.Process().create_time()
