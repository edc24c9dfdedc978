"""batchvoc/errors.py: a ConfigError crosses processes (Ray pickles an actor's errors) as itself."""

from __future__ import annotations

import pickle

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
