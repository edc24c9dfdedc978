"""TensorRT through torch-tensorrt's dynamo path, one static engine per shape, cached on disk.

Route: torch.export.export(model, example) -> torch_tensorrt.dynamo.compile(exported, arg_inputs=example,
use_explicit_typing=True) -> torch_tensorrt.save(..., output_format="exported_program"); later runs
torch_tensorrt.load() the file. Why this and not ONNX + the TensorRT parser:
- no ONNX exporter / onnxscript dependency and no second graph format to debug; weights stay torch's;
- ops TensorRT cannot convert stay in PyTorch instead of failing the build (min_block_size=1 keeps TensorRT
  coverage maximal); the Span ops (arange/compare/where/gather) all have converters;
- precision comes from casting the model (use_explicit_typing, the 2.11 default): fp16/bf16 engines are built
  from a model already in that dtype, so the engine does exactly what the eager model in that dtype does.
Shapes: the chunk-and-pack path gives the engine one (or a few) fixed (B, W+2C) shapes, so each shape gets its own
static engine (TensorRT's fastest case; no min/opt/max profile trade-off). The ONNX + TensorRT Python API route
(IBuilderConfig, add_optimization_profile, set_input_shape) would only pay off for one dynamic engine.

Cache: cache_dir/tensorrt/<engine_key>.ep, keyed by weights digest, preset, precision, shape, GPU name, compute
capability, TensorRT and torch-tensorrt versions (cache.engine_key); written atomically, so a crashed build leaves
nothing half-written. Building takes minutes per shape: progress is logged.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from torch import nn

from batchvoc.backends import TENSORRT_INSTALL_HINT, TENSORRT_NO_GPU
from batchvoc.engines.base import Engine, build_target, cast_model, warmup_input
from batchvoc.engines.cache import engine_key, gpu_identity, weights_digest, write_atomic
from batchvoc.errors import ConfigError
from batchvoc.models.presets import Preset

log = logging.getLogger(__name__)


def import_tensorrt():
    """(tensorrt, torch_tensorrt) modules, or a ConfigError on engine.backend saying how to install them (or, on a
    machine without a CUDA GPU, that tensorrt needs one)."""
    if not torch.cuda.is_available():
        raise ConfigError("engine.backend", TENSORRT_NO_GPU)
    try:
        import tensorrt
        import torch_tensorrt
    except Exception as exc:  # ImportError, or a broken install raising OSError/RuntimeError on load
        raise ConfigError("engine.backend", f"tensorrt is not usable here ({exc}); {TENSORRT_INSTALL_HINT}") from exc
    return tensorrt, torch_tensorrt


def available() -> tuple[bool, str]:
    """(True, versions) when TensorRT and torch-tensorrt import; (False, why) otherwise."""
    try:
        trt, torch_trt = import_tensorrt()
    except ConfigError as exc:
        return False, exc.message
    return True, f"TensorRT {trt.__version__}, torch-tensorrt {torch_trt.__version__}"


def _load(torch_trt, path: Path):
    loaded = torch_trt.load(str(path))
    return loaded.module() if hasattr(loaded, "module") else loaded


def build(
    model: nn.Module,
    preset: Preset,
    precision: str,
    device,
    shapes,
    cache_dir=None,
    optimization_level: int | None = None,
    workspace_size: int = 0,
) -> Engine:
    """A TensorRT Engine for exactly `shapes` [(B, T), ...] on a CUDA device; engines load from cache_dir if built."""
    trt, torch_trt = import_tensorrt()
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        raise ConfigError("engine.backend", f"tensorrt needs a CUDA GPU, device is {device}; use inductor or eager")
    target = build_target("tensorrt", preset.hop_length, precision, device, shapes)
    shapes, precision, dtype = target.shapes, target.precision, target.dtype
    net = cast_model(model, dtype, device)
    gpu_name, capability = gpu_identity(device)
    weights = weights_digest(net)
    options = dict(optimization_level=optimization_level, workspace_size=workspace_size, min_block_size=1)
    extra = dict(options, torch_tensorrt=torch_trt.__version__, torch=torch.__version__, n_mels=preset.n_mels)
    folder = Path(cache_dir or Path.home() / ".cache" / "batchvoc", "tensorrt")
    modules = {}
    for shape in shapes:
        key = engine_key(weights, preset.name, precision, [shape], gpu_name, capability, trt.__version__, extra)
        path = folder / f"{key}.ep"
        example = warmup_input(preset.n_mels, shape, preset.silence, dtype, device)
        if path.exists():
            try:
                modules[shape] = _load(torch_trt, path)
                log.info("tensorrt: loaded cached engine %s", path)
                continue
            except Exception as exc:  # a stale or corrupt entry: rebuild it
                log.warning("tensorrt: cached engine %s unusable (%s); rebuilding", path, exc)
        log.info(
            "tensorrt: building %s %s engine for B=%d T=%d on %s (%s); this takes minutes",
            preset.name,
            precision,
            *shape,
            gpu_name,
            capability,
        )
        start = time.perf_counter()
        with torch.inference_mode():
            exported = torch.export.export(net, example)
        kwargs = {k: v for k, v in options.items() if v is not None}
        compiled = torch_trt.dynamo.compile(
            exported, arg_inputs=list(example), device=device, use_explicit_typing=True, **kwargs
        )
        log.info("tensorrt: built B=%d T=%d in %.0f s; saving %s", *shape, time.perf_counter() - start, path)
        write_atomic(
            path,
            lambda tmp, c=compiled, e=example: torch_trt.save(
                c, tmp, output_format="exported_program", arg_inputs=list(e)
            ),
        )
        modules[shape] = compiled
    for shape, module in modules.items():  # one warm-up call each: lazy init happens here, not on real data
        with torch.inference_mode():
            module(*warmup_input(preset.n_mels, shape, preset.silence, dtype, device))

    def run(mel, valid):
        out = modules[(mel.shape[0], mel.shape[2])](mel, valid)
        return out[0] if isinstance(out, (tuple, list)) else out

    return target.engine(run, f"trt={trt.__version__} gpu={gpu_name} {capability} cache={folder}")
