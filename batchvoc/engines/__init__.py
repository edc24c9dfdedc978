"""Make a vocoder fast on one device: eager (reference) | inductor (torch.compile) | aoti (AOTInductor packages) |
tensorrt, chosen by `auto`.

    check_backend(backend, precision)            # in the driver, before any work: ConfigError naming the key
    engine = build_engine(model, preset, backend="auto", precision="fp16", device="cuda",
                          shapes=[(B, W + 2 * C)], cache_dir=...)
    audio = engine(mel, valid)                    # [B, n_mels, T] float32, [B, 2] int64 -> [B, T*hop] float32
    log.info(engine.describe())

auto: on a CUDA GPU tensorrt when it imports, else aoti where it can build packages (AOTI_ON_GPU), else inductor;
on a CPU eager (the reference: aoti measured no faster there, 0.99x, BENCHMARKS.md). `choose_backend` returns the
pick and the reason, and the engine carries it as `engine.reason`. The engine also says how it came to be:
`engine.load_path` ("built" | "loaded" from engine.cache_dir) and `engine.build_s`.
"""

from __future__ import annotations

import logging
import shutil
import time

import torch
from torch import nn

from batchvoc.backends import check_names
from batchvoc.engines import tensorrt as _tensorrt
from batchvoc.engines.base import BACKENDS, PRECISIONS, Engine, Shape, resolve_precision
from batchvoc.errors import JOB_KEYS, ConfigError, Keys, first_line
from batchvoc.models.presets import Preset

__all__ = ["BACKENDS", "PRECISIONS", "Engine", "aoti_available", "build_engine", "check_backend", "choose_backend",
           "resolve_precision"]  # fmt: skip

log = logging.getLogger(__name__)

# auto's pick on a GPU after tensorrt. H200, torch 2.11+cu130 (BENCHMARKS.md, sessions 5 and 12): audio equal to
# inductor's (69.0 / 60.3 dB against fp32 eager, as inductor), engine at inductor's speed for gsv_v4 (1.009x, H100,
# session 38: its weights kept apart; 0.97x before) and 1.00x for BigVGAN, while an actor is ready in 1-3 s from a
# built package against 12-32 s (inductor, warm compile cache).
# The first job on a machine builds each package once (1.5-3 min, under a file lock).
AOTI_ON_GPU = True


def check_backend(backend: str, precision: str, tunables=None) -> None:
    """Raise ConfigError (engine.backend / engine.precision / engine.options.<key>) for an unknown value, or
    for tensorrt not installed or aoti unable to build here."""
    check_names(backend, precision, tunables)
    if backend == "tensorrt":
        _tensorrt.import_tensorrt()
    if backend == "aoti":
        ok, why = aoti_available()
        if not ok:
            raise ConfigError("engine.backend", f"aoti cannot build packages here: {why}; use inductor or eager")


def aoti_available() -> tuple[bool, str]:
    """(ok, why): AOTInductor needs torch's packaging API and a C++ compiler to build packages. Looks without
    importing torch._inductor (seconds: the compiler, needed only where a package is built)."""
    if not hasattr(getattr(torch._C, "_aoti", None), "AOTIModelPackageLoader"):
        return False, f"torch {torch.__version__} has no AOTInductor packages"
    compiler = next((c for c in ("c++", "g++", "clang++") if shutil.which(c)), None)
    if compiler is None:
        return False, "no C++ compiler on PATH"
    return True, f"AOTInductor with {compiler}"


def choose_backend(device, keys: Keys = JOB_KEYS) -> tuple[str, str]:
    """(backend, reason) that `auto` picks for device; keys: how the reason names the backend's setting."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        ok, why = _tensorrt.available()
        if ok:
            return "tensorrt", f"auto: {why} and a CUDA GPU"
        if AOTI_ON_GPU and aoti_available()[0]:
            return "aoti", f"auto: CUDA GPU without TensorRT ({why}); {aoti_available()[1]}"
        return "inductor", f"auto: CUDA GPU without TensorRT ({why}) or aoti ({aoti_available()[1]})"
    compile_it = keys.set("backend", "inductor")
    return "eager", f"auto: no CUDA GPU on {device}; eager is the CPU reference ({compile_it} to compile)"


def cudnn_benchmark(backend: str, choice: bool | None = None) -> bool:
    """Whether cuDNN times its algorithms at an engine's first call (fixed shapes: once per shape): `choice`
    (engine.options.cudnn_benchmark) where given, else on, but not for aoti, whose point is a start in seconds: on
    an H200 BigVGAN v2 24k's package loaded and warmed up in 13.8 s with the timing and 2.4 s without, for 2.7% more
    time per forward (323.1 -> 332.1 ms, batch 16 x 1024 frames, fp16; BENCHMARKS.md) — a trade that pays for jobs
    under ~70 h of its audio per GPU. torch keeps one cuDNN plan per shape for the process, made at the first call
    that runs it: later engines of the same shapes take it, whatever their setting."""
    return backend != "aoti" if choice is None else bool(choice)


def build_engine(
    model: nn.Module,
    preset: Preset,
    backend: str = "auto",
    precision: str = "fp32",
    device="cpu",
    shapes: list[Shape] | None = None,
    cache_dir=None,
    keys: Keys = JOB_KEYS,
    **options,
) -> Engine:
    """Build an Engine of `model` (copied, never modified) for device, precision and shapes [(B, T), ...].

    options go to the backend: eager / inductor / aoti layout=, antialias=, resblocks=, fused_max_channels=,
    tile_table=, superrows= (engines/layout.py), cudnn_benchmark= (cudnn_benchmark); inductor mode=...; tensorrt
    optimization_level=..., workspace_size=....
    keys: how the reason (logged, and engine.reason) names the backend's setting (errors.API_KEYS: the Python API's).
    """
    check_backend(backend, precision)
    reason, picked = keys.set("backend", backend), backend == "auto"
    if picked:
        backend, reason = choose_backend(device, keys)
        log.info("engine: %s", reason)
    started = time.perf_counter()
    try:
        engine = _build_with(backend, model, preset, precision, device, shapes, cache_dir, options)
    except Exception as err:
        if not (picked and backend == "aoti"):
            raise
        # auto's first choice on a GPU failed to build (a compiler's error, a cache folder it cannot use): auto
        # means the best backend that works, so the job goes on with inductor, saying why
        why = f"{type(err).__name__}: {first_line(err)[:300]}"
        log.warning("engine: auto: aoti could not build (%s); using inductor", why)
        backend, reason = "inductor", f"{reason}; aoti could not build ({why}), so inductor"
        engine = _build_with(backend, model, preset, precision, device, shapes, cache_dir, options)
    engine.build_s = time.perf_counter() - started
    engine.reason = reason
    log.info("engine ready: %s", engine.describe())
    return engine


def _build_with(backend: str, model: nn.Module, preset: Preset, precision: str, device, shapes, cache_dir,
                options: dict) -> Engine:  # fmt: skip
    """The named backend's build (cuDNN's algorithm timing set for it on a GPU: options' cudnn_benchmark)."""
    options = dict(options)
    timing = cudnn_benchmark(backend, options.pop("cudnn_benchmark", None))
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = timing
    if backend == "eager":
        from batchvoc.engines import eager as module
    elif backend == "inductor":
        from batchvoc.engines import inductor as module
    elif backend == "aoti":
        from batchvoc.engines import aoti as module
    else:
        module = _tensorrt
    return module.build(model, preset, precision, device, shapes, cache_dir, **options)
