"""Engine names, option values and the engine cache folder checked without torch, before a job starts Ray
(batchvoc/backends.py)."""

from __future__ import annotations

import json

import pytest

from batchvoc.backends import (
    BOOLEANS,
    CHOICES,
    INTEGERS,
    TUNABLES,
    check_cache_dir,
    check_names,
    option_value,
    parse_tile_table,
)
from batchvoc.errors import ConfigError

BAD_VALUES = [  # (option, value, words the message must hold)
    ("layout", "sideways", "choose one of auto, ncl, channels_last_2d"),
    ("antialias", "fast", "choose one of"),
    ("resblocks", "yes", "choose one of"),
    ("kernels", "bogus", "choose one of traced, opaque"),
    ("mode", "turbo", "choose one of default"),
    ("fused_max_channels", "many", "must be an integer"),
    ("fused_max_channels", -3, "must be 0 or more"),
    ("superrows", "two", "must be an integer"),
    ("superrows", -1, "must be 0 or more"),
    ("optimization_level", 9, "5 or less"),
    ("workspace_size", "1.5", "must be an integer"),
    ("tile_table", "/nonexistent/tiles.json", "cannot read a tile table from '/nonexistent/tiles.json'"),
    ("tile_table", {"64,7": {"BLOCK_M": 64}}, "write it as C_IN,KSIZE,ACT"),
    ("tile_table", {"64,7,1": {"BLOCK_Q": 64}}, "unknown keys ['BLOCK_Q']"),
    ("tile_table", {"64,7,1": {"BLOCK_M": "big"}}, "values are integers"),
    ("tile_table", {"64,7,1": 64}, "a mapping of BLOCK_M"),
    ("tile_table", 7, "not int"),
    ("cudnn_benchmark", "sometimes", "must be true or false, not 'sometimes'"),
    ("cudnn_benchmark", 2, "must be true or false, not 2"),
]


@pytest.mark.parametrize(("key", "value", "words"), BAD_VALUES, ids=[f"{k}={v}" for k, v, _ in BAD_VALUES])
def test_a_bad_option_value_names_its_key(key, value, words):
    with pytest.raises(ConfigError) as err:
        check_names("auto", "fp16", {key: value})
    assert err.value.key == f"engine.options.{key}" and words in err.value.message, err.value.message


def test_every_option_with_rules_is_one_some_backend_takes():
    taken = {k for keys in TUNABLES.values() for k in keys}
    assert set(CHOICES) | set(INTEGERS) | set(BOOLEANS) | {"tile_table"} == taken


def test_good_values_pass_and_numbers_become_ints(tmp_path):
    path = tmp_path / "tiles.json"
    path.write_text(json.dumps({"64,7,1": {"BLOCK_M": "128", "STAGES": 3}}))
    assert option_value("fused_max_channels", "32") == 32 and option_value("layout", "ncl") == "ncl"
    assert option_value("superrows", "2") == 2
    assert [option_value("cudnn_benchmark", v) for v in (True, "false", "True", False)] == [True, False, True, False]
    assert parse_tile_table(str(path)) == {(64, 7, 1): {"BLOCK_M": 128, "STAGES": 3}}
    check_names("inductor", "bf16", {key: values[-1] for key, values in CHOICES.items()} | {"tile_table": str(path)})


def test_the_modes_are_torchs():
    inductor = pytest.importorskip("torch._inductor")
    for mode in CHOICES["mode"]:
        inductor.list_mode_options(mode)  # raises for a mode this torch does not know


def test_each_fused_antialias_method_is_a_choice():
    pytest.importorskip("torch")
    from batchvoc.engines import layout

    assert set(layout.FUSED_METHODS) < set(CHOICES["antialias"])


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
