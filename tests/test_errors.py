"""batchvoc/errors.py: a ConfigError crosses processes (Ray pickles an actor's errors) as itself."""

from __future__ import annotations

import pickle

from batchvoc.errors import ConfigError


def test_a_config_error_pickles_with_its_key_and_message():
    err = pickle.loads(pickle.dumps(ConfigError("engine.cache_dir", "is a file, not a folder")))
    assert type(err) is ConfigError and (err.key, err.message) == ("engine.cache_dir", "is a file, not a folder")
    assert str(err) == "engine.cache_dir: is a file, not a folder"


def test_a_config_error_shown_under_another_name_pickles_with_it():
    """The Python API shows a ConfigError under its keyword (batchvoc.api.in_keywords); Ray carries it as is."""
    err = pickle.loads(pickle.dumps(ConfigError("engine.backend", "unknown backend 'warp'", shown="backend")))
    assert (err.key, err.shown, str(err)) == ("engine.backend", "backend", "backend: unknown backend 'warp'")
