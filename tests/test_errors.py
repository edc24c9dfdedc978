"""batchvoc/errors.py: a ConfigError crosses processes (Ray pickles an actor's errors) as itself; the wording of
keys and counts; commands whose reader stopped reading end quietly."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest

from batchvoc.errors import API_KEYS, JOB_KEYS, ConfigError, counted


def test_a_config_error_pickles_with_its_key_and_message():
    err = pickle.loads(pickle.dumps(ConfigError("engine.cache_dir", "is a file, not a folder")))
    assert type(err) is ConfigError and (err.key, err.message) == ("engine.cache_dir", "is a file, not a folder")
    assert str(err) == "engine.cache_dir: is a file, not a folder"


def test_a_config_error_shown_under_another_name_pickles_with_it():
    """The Python API shows a ConfigError under its keyword (batchvoc.api.in_keywords); Ray carries it as is."""
    err = pickle.loads(pickle.dumps(ConfigError("engine.backend", "unknown backend 'warp'", shown="backend")))
    assert (err.key, err.shown, str(err)) == ("engine.backend", "backend", "backend: unknown backend 'warp'")


def test_a_count_of_one_is_singular():
    assert [counted(n, "row") for n in (0, 1, 2)] == ["0 rows", "1 row", "2 rows"]
    assert counted(1, "match", "matches") == "1 match" and counted(3, "match", "matches") == "3 matches"


def test_keys_name_a_setting_as_the_job_or_the_api_does():
    assert JOB_KEYS.set("backend", "inductor") == "engine.backend=inductor"
    assert API_KEYS.set("checkpoint", "random") == 'checkpoint="random"'


@pytest.mark.parametrize("module", ["batchvoc", "batchvoc.manifest", "batchvoc.report", "batchvoc.build"])
def test_a_command_whose_reader_stopped_reading_ends_quietly(module):
    """`python -m batchvoc --help | head -1`: stdout's reader gone (here a pipe whose read end is closed before the
    command writes), the command ends without a BrokenPipeError traceback (exit code 1 where the write failed; an
    argparse --help exits 0, Python dropping the failed flush at exit)."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", module, "--help"], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=120)  # fmt: skip
    finally:
        os.close(write)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr[-2000:]
