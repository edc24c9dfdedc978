"""torch.compile / Inductor over a small fixed set of static shapes.

Build: copy and cast the model, torch.compile it (dynamic=False, fullgraph=True: a graph break is an error, not a
silent split), then call it once per shape so every shape is compiled (and on GPU autotuned) before the first
real batch. Dynamo's recompile limit (8 cache entries per code object by default) would silently drop a function
to eager when exceeded; the limit is raised to cover every shape compiled in this process, and every call after
warm-up runs under `torch.compiler.set_stance("fail_on_recompile")`, so a shape or guard that was not warmed up
raises instead of quietly recompiling or running eager.

Caches: with cache_dir set, Inductor's on-disk caches (FX graph cache, AOTAutograd cache, Triton kernels) live
under cache_dir/inductor (TORCHINDUCTOR_CACHE_DIR, process-wide), so a second job on the same machine/image starts
warm. mode: "default" on CPU; on GPU "max-autotune-no-cudagraphs" by default (CUDA graphs would pin a static
output buffer that the next call overwrites); override with options mode=....
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch
import torch._dynamo
from torch import nn

from batchvoc.engines.base import Engine, cast_model, resolve_precision, warmup_input
from batchvoc.models.presets import Preset

try:
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
except ImportError:  # private API: only used to tell torch's own default from a user's setting

    def default_cache_dir() -> str:
        return ""


log = logging.getLogger(__name__)

_compiled_shapes = 0  # shapes compiled in this process: each is one cache entry on the model's forward


def default_mode(device) -> str:
    return "max-autotune-no-cudagraphs" if torch.device(device).type == "cuda" else "default"


def _raise_recompile_limit(needed: int) -> None:
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):  # the name changed across torch versions
        if hasattr(config, name) and getattr(config, name) < needed:
            setattr(config, name, needed)
    if config.accumulated_recompile_limit < needed:
        config.accumulated_recompile_limit = needed


def use_cache_dir(cache_dir: str | os.PathLike | None) -> str | None:
    """Point Inductor's on-disk caches at cache_dir/inductor (process-wide); returns the folder used."""
    if cache_dir is None:
        return None
    folder = str(Path(cache_dir, "inductor").resolve())
    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if previous and previous not in (folder, os.path.abspath(default_cache_dir())):
        log.warning("TORCHINDUCTOR_CACHE_DIR was %s; using %s", previous, folder)
    os.makedirs(folder, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    return folder


def build(
    model: nn.Module,
    preset: Preset,
    precision: str,
    device,
    shapes,
    cache_dir=None,
    mode: str | None = None,
) -> Engine:
    """An Inductor Engine for exactly `shapes` [(B, T), ...], compiled and warmed up here."""
    global _compiled_shapes
    if not shapes:
        raise ValueError("inductor engine needs the shapes it will run: shapes=[(B, T), ...]")
    shapes = [tuple(int(v) for v in s) for s in shapes]
    precision, dtype = resolve_precision(precision, device)
    device = torch.device(device)
    mode = mode or default_mode(device)
    folder = use_cache_dir(cache_dir)
    net = cast_model(model, dtype, device)
    _compiled_shapes += len(shapes)
    _raise_recompile_limit(_compiled_shapes + 8)
    compiled = torch.compile(net, mode=mode, dynamic=False, fullgraph=True)
    n_mels = preset.n_mels
    for shape in shapes:
        start = time.perf_counter()
        mel, valid = warmup_input(n_mels, shape, preset.silence, dtype, device)
        with torch.inference_mode():
            compiled(mel, valid)
            with torch.compiler.set_stance("fail_on_recompile"):
                compiled(mel, valid)  # a second call must hit the cache
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        log.info(
            "inductor: compiled %s shape B=%d T=%d in %.1f s (mode=%s)",
            preset.name,
            *shape,
            time.perf_counter() - start,
            mode,
        )

    def run(mel, valid):
        with torch.compiler.set_stance("fail_on_recompile"):
            return compiled(mel, valid)

    details = f"mode={mode}" + (f" cache={folder}" if folder else "")
    return Engine(
        run,
        backend="inductor",
        precision=precision,
        device=device,
        hop=preset.hop_length,
        shapes=shapes,
        details=details,
    )
