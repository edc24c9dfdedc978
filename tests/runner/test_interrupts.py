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
