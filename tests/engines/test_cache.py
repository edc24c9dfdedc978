"""engines/cache.py: whether a node can keep engines in engine.cache_dir, found before a build writes there."""

from __future__ import annotations

import pytest

from batchvoc.engines.cache import check_cache_dir
from batchvoc.errors import ConfigError


def test_a_new_folder_is_made_and_none_is_nothing_to_check(tmp_path):
    check_cache_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    check_cache_dir(None)


@pytest.mark.parametrize(("where", "words"), [("file", "is a file, not a folder"), ("below_a_file", "cannot hold")])
def test_a_folder_that_cannot_be_one_names_engine_cache_dir(tmp_path, where, words):
    (tmp_path / "f").write_text("x")
    folder = tmp_path / "f" if where == "file" else tmp_path / "f" / "cache"
    with pytest.raises(ConfigError) as err:
        check_cache_dir(folder)
    assert err.value.key == "engine.cache_dir" and words in err.value.message and str(folder) in err.value.message
