"""Ctrl-C at a job's end (runner/interrupts.py), in fresh interpreters: signals go to their own process only."""

import os
import subprocess
import sys
from pathlib import Path

END_GUARD = """
import os, signal, sys, time
from batchvoc.runner.interrupts import EndGuard


def ctrl_c(wait):  # SIGINT to this process, then time for its handler (or a KeyboardInterrupt) to act
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(wait)


signal.signal(signal.SIGINT, signal.default_int_handler)  # a suite run in the background may have it ignored
with EndGuard() as ending:  # not begun: Ctrl-C raises as ever
    try:
        ctrl_c(5)
    except KeyboardInterrupt:
        print("raised before begin", flush=True)
with EndGuard() as ending:
    ending.begin()
    ctrl_c(0.2)
    print("noted", ending.interrupted, flush=True)
try:  # the context's exit gave the handler back
    ctrl_c(5)
except KeyboardInterrupt:
    print("raised after the end", flush=True)
with EndGuard() as ending:
    ending.begin()
    ctrl_c(0.2)
    ctrl_c(5)
    print("not ended", flush=True)
"""


def test_ctrl_c_at_the_jobs_end_is_held_back_once_and_a_second_ends_the_process_at_once():
    """interrupts.EndGuard, in a fresh interpreter (a second Ctrl-C ends the process): once begun, a first Ctrl-C is
    noted, not raised into the end's writes; a second exits 130 at once; before `begin` and after the context a
    Ctrl-C raises KeyboardInterrupt as ever."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, "-c", END_GUARD], capture_output=True, text=True, env=env, timeout=120)
    said = done.stdout.splitlines()
    assert said == ["raised before begin", "noted True", "raised after the end"], done.stdout + done.stderr
    assert done.returncode == 130 and "interrupted again" in done.stderr, done.stderr
    assert "interrupted at the job's end" in done.stderr


SIGTERM_AS_INTERRUPT = """
import os, signal, sys, time
from batchvoc.errors import Terminated, interrupted_by
from batchvoc.runner.interrupts import EndGuard, terminate_as_interrupt


def send(signum, wait):
    os.kill(os.getpid(), signum)
    time.sleep(wait)


def own(signum, frame):
    print("own handler", flush=True)


signal.signal(signal.SIGTERM, own)  # a program's own handler is left as it is
terminate_as_interrupt()
send(signal.SIGTERM, 0.2)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
terminate_as_interrupt()
try:
    send(signal.SIGTERM, 5)
except Terminated as err:
    print("raised", isinstance(err, KeyboardInterrupt), *interrupted_by(), flush=True)
signal.signal(signal.SIGINT, signal.default_int_handler)
Terminated.received = False  # the guard's own handler must say it was a SIGTERM
with EndGuard() as ending:
    ending.begin()
    send(signal.SIGTERM, 0.2)
    print("noted", ending.interrupted, interrupted_by(), flush=True)
with EndGuard() as ending:
    ending.begin()
    send(signal.SIGTERM, 0.2)
    send(signal.SIGTERM, 5)
    print("not ended", flush=True)
"""


def test_sigterm_raises_as_ctrl_c_does_and_a_second_at_the_jobs_end_exits_143():
    """terminate_as_interrupt: SIGTERM (kill, timeout, a batch scheduler) raises errors.Terminated, a
    KeyboardInterrupt, so a job handles it as a Ctrl-C (exit code 143); a program's own handler is kept; at the
    job's end a first SIGTERM is noted as a Ctrl-C is, a second ends the process at once with 143."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, "-c", SIGTERM_AS_INTERRUPT], capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip
    said = done.stdout.splitlines()
    assert said == ["own handler", "raised True SIGTERM 143", "noted True ('SIGTERM', 143)"], done.stdout + done.stderr
    assert done.returncode == 143 and "interrupted again" in done.stderr, done.stderr
    assert "another SIGTERM or a Ctrl-C ends it at once" in done.stderr
