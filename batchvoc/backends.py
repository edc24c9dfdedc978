"""Engine backends, precisions and engine options by name, without torch: the command checks a job's engine
settings with these before it starts Ray or imports torch (runner/checks.py).

TUNABLES: the `engine.options` each backend takes (engines/layout.py's rewrites, the backends' own).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchvoc.errors import ConfigError

BACKENDS = ("auto", "tensorrt", "aoti", "inductor", "eager")
PRECISION_NAMES = ("fp32", "fp16", "bf16")

_REWRITES = ("layout", "antialias", "resblocks", "fused_max_channels", "tile_table")
TUNABLES: dict[str, tuple[str, ...]] = {
    "eager": _REWRITES,
    "inductor": (*_REWRITES, "mode", "kernels"),
    "aoti": (*_REWRITES, "kernels"),
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
    for key in tunables or {}:
        if key not in known:
            raise ConfigError(f"engine.options.{key}", f"unknown engine option; known: {', '.join(known)}")
