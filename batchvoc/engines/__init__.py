"""Make a vocoder fast on one device: eager (reference) | inductor (torch.compile) | tensorrt, chosen by `auto`.

    check_backend(backend, precision)            # in the driver, before any work: ConfigError naming the key
    engine = build_engine(model, preset, backend="auto", precision="fp16", device="cuda",
                          shapes=[(B, W + 2 * C)], cache_dir=...)
    audio = engine(mel, valid)                    # [B, n_mels, T] float32, [B, 2] int64 -> [B, T*hop] float32
    log.info(engine.describe())

auto: tensorrt when it imports and the device is a CUDA GPU, else inductor on a CUDA GPU, else eager (the CPU
reference); `choose_backend` returns the pick and the reason, and the engine carries it as `engine.reason`.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from batchvoc.engines import tensorrt as _tensorrt
from batchvoc.engines.base import BACKENDS, PRECISIONS, Engine, Shape, resolve_precision
from batchvoc.errors import ConfigError
from batchvoc.models.presets import Preset

__all__ = ["BACKENDS", "PRECISIONS", "Engine", "build_engine", "check_backend", "choose_backend", "resolve_precision"]

log = logging.getLogger(__name__)


def check_backend(backend: str, precision: str) -> None:
    """Raise ConfigError (engine.backend / engine.precision) for an unknown value or tensorrt not installed."""
    if backend not in BACKENDS:
        raise ConfigError("engine.backend", f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ConfigError("engine.precision", f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if backend == "tensorrt":
        _tensorrt.import_tensorrt()


def choose_backend(device) -> tuple[str, str]:
    """(backend, reason) that `auto` picks for device."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        ok, why = _tensorrt.available()
        if ok:
            return "tensorrt", f"auto: {why} and a CUDA GPU"
        return "inductor", f"auto: CUDA GPU without TensorRT ({why})"
    return "eager", f"auto: no CUDA GPU on {device}; eager is the CPU reference (engine.backend=inductor to compile)"


def build_engine(
    model: nn.Module,
    preset: Preset,
    backend: str = "auto",
    precision: str = "fp32",
    device="cpu",
    shapes: list[Shape] | None = None,
    cache_dir=None,
    **options,
) -> Engine:
    """Build an Engine of `model` (copied, never modified) for device, precision and shapes [(B, T), ...].

    options go to the backend: inductor mode=...; tensorrt optimization_level=..., workspace_size=....
    """
    check_backend(backend, precision)
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN times its algorithms once per shape
    reason = f"engine.backend={backend}"
    if backend == "auto":
        backend, reason = choose_backend(device)
        log.info("engine: %s", reason)
    if backend == "eager":
        from batchvoc.engines import eager as module
    elif backend == "inductor":
        from batchvoc.engines import inductor as module
    else:
        module = _tensorrt
    engine = module.build(model, preset, precision, device, shapes, cache_dir, **options)
    engine.reason = reason
    log.info("engine ready: %s", engine.describe())
    return engine
