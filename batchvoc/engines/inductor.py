"""torch.compile / Inductor over a small fixed set of static shapes.

Build: copy and cast the model, torch.compile it (dynamic=False, fullgraph=True: a graph break is an error, not a
silent split), then call it once per shape so every shape is compiled (and on GPU autotuned) before the first
real batch. Dynamo's recompile limit (8 cache entries per code object by default) would silently drop a function
to eager when exceeded; the limit is raised to cover every shape compiled in this process, and every call after
warm-up runs under `torch.compiler.set_stance("fail_on_recompile")`, so a shape or guard that was not warmed up
raises instead of quietly recompiling or running eager.

Caches: with cache_dir set, Inductor's on-disk caches (FX graph cache, AOTAutograd cache, Triton kernels) live
under cache_dir/inductor (TORCHINDUCTOR_CACHE_DIR, process-wide), so a second job on the same machine/image starts
warm; that includes max-autotune's benchmark results (Inductor's local autotune cache) and the FX graph cache, so
a warm start skips autotuning. A model with our kernel operators adds their source's digest to the caches' keys
(engines/ops.py: a compiled graph holds their kernels and launch parameters as traced).

mode: "default" (on an H100, gsv_v4 fp16 batch 16: default 2,268x in 36 s of build, max-autotune-no-cudagraphs
2,201x in 258 s, reduce-overhead 2,304x: the model is not launch-bound), except for engines of small batches on a
GPU, which default to CUDA graphs ("reduce-overhead": `default_mode`; at batch 1 the host's launches bound the
engine); with CUDA graphs ("reduce-overhead", "max-autotune") each call marks a new step and clones the output out
of the graph's static buffer.

Layout (engines/layout.py): on a CUDA GPU the engine's copy of the model is rewritten by default with
layout="channels_last_2d" (every Conv1d as a channels-last (1, k) Conv2d, with Inductor's layout optimisation
forced on, so no NCHW <-> NHWC transposes) and, where triton imports, antialias="fused" (BigVGAN's anti-aliased
activations as two Triton kernels each, engines/fused_antialias.py); layout="ncl" / antialias="conv" turn them
off; on a CPU both default off. Likewise resblocks="fused" (HiFi-GAN's resblock convs of up to 64 channels as
Triton kernels with the leaky ReLU and residual inside, engines/fused_resblock.py) on a GPU with triton.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch._dynamo
from torch import nn

from batchvoc.engines import layout as _layout
from batchvoc.engines.base import Engine, build_target, laid_out, warmup_input
from batchvoc.engines.cuda_graph import graphs_pay
from batchvoc.engines.ops import check_compiled_as, compiled_as, kernels_digest
from batchvoc.models.presets import Preset

try:
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
except ImportError:  # private API: only used to tell torch's own default from a user's setting

    def default_cache_dir() -> str:
        return ""


log = logging.getLogger(__name__)

_compiled_shapes = 0  # shapes compiled in this process: a bound for Dynamo's recompile limits


DEFAULT_MODE = "default"  # module docstring: max-autotune was no faster on an H100


def default_mode(device: torch.device | str, shapes: list[tuple[int, int]]) -> str:
    """The mode an engine of these [(B, T), ...] shapes compiles with when none is asked for: "reduce-overhead"
    (CUDA graphs) where they pay (engines/cuda_graph.graphs_pay: small batches on a CUDA GPU), else DEFAULT_MODE."""
    return "reduce-overhead" if graphs_pay(device, shapes) else DEFAULT_MODE


def _cuda_graph_trees_for_this_thread() -> None:
    """Give the calling thread its own CUDA graph trees where it has none. torch before 2.13 kept them in the
    thread-local storage of the thread that imported torch/_inductor/cudagraph_trees.py, and a call from any other
    thread (a web server's pool, a thread of one's own) failed a bare assert in its `get_obj`; 2.13 makes them per
    thread as done here (its `_initialize_tls`)."""
    from torch._inductor import cudagraph_trees as trees

    local = trees.local
    if hasattr(local, "tree_manager_containers") or torch._C._is_key_in_tls("tree_manager_containers"):
        return
    local.tree_manager_containers, local.tree_manager_locks = {}, collections.defaultdict(threading.Lock)
    torch._C._stash_obj_in_tls("tree_manager_containers", local.tree_manager_containers)
    torch._C._stash_obj_in_tls("tree_manager_locks", local.tree_manager_locks)


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


def compile_options(mode: str, layout: str) -> dict:
    """torch.compile options for `mode` (its Inductor settings), plus layout optimisation for channels_last_2d."""
    import torch._inductor

    options = dict(torch._inductor.list_mode_options(mode))
    if layout == "channels_last_2d":
        options["force_layout_optimization"] = True
    return options


def _cache_tag(rewrites: _layout.Rewrites, kernels: str) -> str:
    """Added to the compile caches' keys: the digest of our kernel operators' source where the model calls them
    (the caches count their kernels' source, not the Python that launches them: tiles, grids; engines/ops.py), and
    how the compile takes them."""
    return f"batchvoc-kernels-{kernels_digest()}-{kernels}" if rewrites.fused else ""


def _entry(kernels: str) -> Callable:
    """`entry(net, mel, valid) -> net(mel, valid)` with a code object of its own (one per engine built, named for
    `kernels`). Dynamo keeps compiled graphs per code object, and its guards do not see how our operators compile
    (ops.compiled_as): a second engine of the other `kernels` in one process (the bench's lines) was handed the
    first one's graph."""

    def entry(net: nn.Module, mel, valid):
        return net(mel, valid)

    code = entry.__code__.replace(co_name=f"entry_kernels_{kernels}")
    return types.FunctionType(code, entry.__globals__, code.co_name)


@contextlib.contextmanager
def _compiling(rewrites: _layout.Rewrites, kernels: str) -> Iterator[None]:
    """Where the model compiles: our operators compiled as `kernels` (ops.compiled_as), the caches keyed for it."""
    with torch.compiler.config.patch(cache_key_tag=_cache_tag(rewrites, kernels)), compiled_as(kernels):
        yield


def build(
    model: nn.Module,
    preset: Preset,
    precision: str,
    device,
    shapes,
    cache_dir=None,
    mode: str | None = None,
    kernels: str = "opaque",
    **rewrites: str,
) -> Engine:
    """An Inductor Engine for exactly `shapes` [(B, T), ...], compiled and warmed up here.

    rewrites: layout=, antialias=, resblocks= (engines/layout.py); "auto" (the default) picks them for the device.
    kernels: "opaque" (Inductor calls our kernel operators) or "traced" (it compiles their kernels in): ops.compiled_as.
    """
    global _compiled_shapes
    check_compiled_as(kernels)
    target = build_target("inductor", preset.hop_length, precision, device, shapes)
    shapes, dtype, device = target.shapes, target.dtype, target.device
    mode = mode or default_mode(device, shapes)
    net, chosen = laid_out(model, target, **rewrites)
    folder = use_cache_dir(cache_dir)
    _compiled_shapes += len(shapes)
    _raise_recompile_limit(_compiled_shapes + 8)
    options = compile_options(mode, chosen.layout)
    cudagraphs = bool(options.get("triton.cudagraphs", False))
    compiled = functools.partial(torch.compile(_entry(kernels), options=options, dynamic=False, fullgraph=True), net)

    def call(mel, valid):
        # Dynamo guards on the dispatch keys: inputs made outside inference_mode (e.g. already on the device in
        # the engine's dtype, which Engine passes through) would not match the graph; copy those (a few MB).
        if not mel.is_inference():
            mel = mel.clone()
        if valid.dim() == 2:  # one graph for [B, 2] and [B, 2, T] spans: [B, 2] as the per-frame form
            valid = valid.unsqueeze(-1).expand(-1, -1, mel.shape[-1]).contiguous()
        elif not valid.is_inference():
            valid = valid.clone()
        if cudagraphs:
            _cuda_graph_trees_for_this_thread()
            torch.compiler.cudagraph_mark_step_begin()
            return compiled(mel, valid).clone()
        return compiled(mel, valid)

    n_mels = preset.n_mels
    for shape in shapes:
        start = time.perf_counter()
        with torch.inference_mode(), _compiling(chosen, kernels):
            mel, valid = warmup_input(n_mels, shape, preset.silence, dtype, device)
            call(mel, valid)
            with torch.compiler.set_stance("fail_on_recompile"):
                call(mel, valid)  # a second call must hit the cache
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
            return call(mel, valid)

    details = f"mode={mode} {_layout.describe(chosen, model)}" + (f" kernels={kernels}" if chosen.fused else "")
    details += f" cache={folder}" if folder else ""
    return target.engine(run, details)
