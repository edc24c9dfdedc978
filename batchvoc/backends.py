"""Engine backends, precisions and engine options by name, without torch: the command checks a job's engine
settings with these before it starts Ray or imports torch (runner/checks.py).

TUNABLES: the `engine.options` each backend takes (engines/layout.py's rewrites, the backends' own); CHOICES,
BOOLEANS, INTEGERS and parse_tile_table: the values each option takes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from batchvoc.errors import ConfigError

BACKENDS = ("auto", "tensorrt", "aoti", "inductor", "eager")
TENSORRT_INSTALL_HINT = (
    "pip install 'batchvoc[tensorrt]' (torch-tensorrt 2.11 pairs with torch 2.11 and TensorRT 10.15)"
)
TENSORRT_NO_GPU = (
    "tensorrt needs a CUDA GPU and this machine has none; use engine.backend=auto (eager here), aoti or inductor"
)
PRECISION_NAMES = ("fp32", "fp16", "bf16")

_REWRITES = ("layout", "antialias", "resblocks", "fused_max_channels", "tile_table", "superrows")
# each named option's values (engines/layout.py, engines/ops.py, torch._inductor.list_mode_options take these)
CHOICES: dict[str, tuple[str, ...]] = {
    "layout": ("auto", "ncl", "channels_last_2d"),
    "antialias": ("auto", "conv", "fused", "fused1", "fused1g", "fused1r", "polyphase"),
    "resblocks": ("auto", "conv", "fused", "fused_wide"),
    "kernels": ("traced", "opaque"),
    "mode": ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune"),
}
# options that are on or off (cudnn_benchmark: engines/__init__.cudnn_benchmark; cuda_graphs: engines/aoti.build)
BOOLEANS: tuple[str, ...] = ("cudnn_benchmark", "cuda_graphs")
# each integer option's bounds, inclusive (optimization_level: Torch-TensorRT's builder levels)
INTEGERS: dict[str, tuple[int, int | None]] = {
    "fused_max_channels": (0, None),
    "superrows": (0, None),
    "optimization_level": (0, 5),
    "workspace_size": (0, None),
}
TILE_KEYS = ("BLOCK_M", "BLOCK_N", "BLOCK_C", "num_warps", "num_stages", "STAGES")  # a tile as a list of ints
TUNABLES: dict[str, tuple[str, ...]] = {
    "eager": (*_REWRITES, "cudnn_benchmark"),
    "inductor": (*_REWRITES, "mode", "kernels", "cudnn_benchmark"),
    "aoti": (*_REWRITES, "kernels", "cudnn_benchmark", "cuda_graphs"),
    "tensorrt": ("optimization_level", "workspace_size"),
}


def check_names(backend: str, precision: str, tunables: Mapping[str, Any] | None = None) -> None:
    """ConfigError naming engine.backend, engine.precision or engine.options.<key> for an unknown name."""
    if backend not in BACKENDS:
        raise ConfigError("engine.backend", f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISION_NAMES:
        raise ConfigError("engine.precision",
                          f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_NAMES)}")  # fmt: skip
    known = sorted({k for keys in TUNABLES.values() for k in keys})
    for key, value in (tunables or {}).items():
        if key not in known:
            raise ConfigError(f"engine.options.{key}", f"unknown engine option; known: {', '.join(known)}")
        if value is not None:
            option_value(key, value)


def option_value(key: str, value: Any) -> Any:
    """An engine option's value as the engines take it (numbers from the command line made ints, a tile table's
    file read); ConfigError naming engine.options.<key> for a value outside the option's choices or bounds."""
    name = f"engine.options.{key}"
    if key in BOOLEANS:
        flag = {"true": True, "false": False}.get(str(value).lower())
        if flag is None:
            raise ConfigError(name, f"must be true or false, not {value!r}")
        return flag
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(name, f"unknown value {value!r}; choose one of {', '.join(CHOICES[key])}")
    if key in INTEGERS:
        low, high = INTEGERS[key]
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise ConfigError(name, f"must be an integer, not {value!r}") from None
        if value < low or (high is not None and value > high):
            raise ConfigError(name, f"must be {low} or more" + (f" and {high} or less" if high is not None else "")
                              + f", not {value}")  # fmt: skip
    if key == "tile_table":
        try:
            parse_tile_table(value)
        except ValueError as err:
            raise ConfigError(name, str(err)) from None
    return value


def parse_tile_table(table: Mapping | str | None) -> dict[tuple[int, int, int], dict[str, int]]:
    """A tile table, {"C_IN,KSIZE,ACT": {BLOCK_M: .., ...}} or the path of a JSON file holding one, as
    {(c_in, ksize, act): tile}. Raises ValueError naming the file, entry or key that is wrong."""
    if isinstance(table, str):
        try:
            table = json.loads(Path(table).read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read a tile table from {table!r}: {err}") from None
    if not isinstance(table, Mapping | type(None)):
        raise ValueError(f"a tile table is a mapping or the path of a JSON file, not {type(table).__name__}")
    parsed = {}
    for key, config in dict(table or {}).items():
        parts = str(key).split(",")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"tile_table key {key!r}: write it as C_IN,KSIZE,ACT (e.g. '64,7,1')")
        if not isinstance(config, Mapping):
            raise ValueError(f"tile_table[{key!r}]: a mapping of {', '.join(TILE_KEYS)}, not {config!r}")
        unknown = set(config) - set(TILE_KEYS)
        if unknown:
            raise ValueError(f"tile_table[{key!r}]: unknown keys {sorted(unknown)}; known: {', '.join(TILE_KEYS)}")
        try:
            parsed[tuple(int(p) for p in parts)] = {k: int(v) for k, v in config.items()}
        except (TypeError, ValueError):
            raise ValueError(f"tile_table[{key!r}]: values are integers, not {dict(config)!r}") from None
    return parsed


def check_installed(backend: str) -> None:
    """ConfigError on engine.backend where `backend` needs packages this machine lacks (looked for, not imported):
    tensorrt needs tensorrt and torch_tensorrt. For a local cluster, whose workers run here."""
    if backend != "tensorrt":
        return
    if not Path("/dev/nvidiactl").exists():  # the NVIDIA driver's control device: no GPU here, whatever is installed
        raise ConfigError("engine.backend", TENSORRT_NO_GPU)
    missing = [name for name in ("tensorrt", "torch_tensorrt") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError("engine.backend", f"tensorrt needs {' and '.join(missing)}, not installed here "
                                            f"({TENSORRT_INSTALL_HINT}); or engine.backend=auto")  # fmt: skip


def check_cache_dir(cache_dir: str | os.PathLike | None) -> None:
    """ConfigError naming engine.cache_dir where this node cannot keep engines there (a file, no permission, a
    read-only disk): found before a build that would fail at its first write. None: nothing to check."""
    if cache_dir is None:
        return
    folder = Path(cache_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError("engine.cache_dir", f"{str(folder)!r} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise ConfigError("engine.cache_dir", f"{str(folder)!r} cannot hold engines on this node: {why}") from None
