"""AOTInductor packages: the model exported once, compiled ahead of time into a `.pt2`, loaded in seconds.

Build: the engine's laid-out copy of the model (engines/layout.py: on a CUDA GPU the channels-last rewrite and the
fused Triton kernels, triton_op operators: engines/ops.py) is exported with `torch.export` for one static shape,
compiled by `torch._inductor.aoti_compile_and_package` (Triton kernels on a GPU, C++ on a CPU; our operators'
kernels, or on a CPU their plain-torch path, compiled in with the rest) into `<cache_dir>/aoti/<key>.pt2`, and loaded
by torch's C++ package loader. The package launches every kernel itself: a process that loads one neither defines
nor calls our operators, and neither runs nor imports Dynamo or the compiler, so a warm start is import + load +
one warm-up call per shape.

Cache key (cache.engine_key): weights digest, preset name and hyper-parameters, precision, shape, the rewrites and
their tunables (with fused kernels: a digest of their source, which the package holds compiled), the device (GPU
name and compute capability, or the CPU's architecture and vector ISA), and the torch / triton versions. A package
is written to a temporary name and renamed, under a file lock (`<key>.pt2.lock`, filelock): the first process to
need a package builds it, the others on that node wait on the lock and load what it wrote. A package that fails to
load (truncated, other library build) is rebuilt. A build that fails leaves `<key>.pt2.failed`, and for
FAILED_TTL_S the processes that waited for it fail at once with its error instead of each building in turn.

On a CPU the package is C++ (needs a C++ compiler, as torch.compile does); the rewrites default off there.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import json
import logging
import os
import platform
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from batchvoc.engines import layout as _layout
from batchvoc.engines.base import Engine, build_target, laid_out, warmup_input
from batchvoc.engines.cache import engine_key, gpu_identity, weights_digest
from batchvoc.engines.cuda_graph import GraphedCall, graphs_pay
from batchvoc.engines.ops import check_compiled_as, compiled_as, define_all, kernels_digest
from batchvoc.errors import first_line
from batchvoc.models.presets import Preset
from batchvoc.native import libstdcxx_is_global

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 3600.0  # how long an actor waits for another process's build before giving up
# a build that failed this recently (its `<key>.pt2.failed` note) is not tried again by the processes waiting on
# the lock: on a node of 8 GPUs each would otherwise build and fail in turn, minutes each
FAILED_TTL_S = 900.0


def versions() -> dict[str, str]:
    """The library versions a package depends on: torch, triton (or "none") and the CPU's vector ISA. triton's from
    its distribution's metadata: a process that loads a package does not import triton (the package holds its
    kernels compiled)."""
    return dict(torch=torch.__version__, triton=_distribution_version("triton", "pytorch-triton"),
                cpu=platform.machine(), cpu_isa=torch.backends.cpu.get_cpu_capability())  # fmt: skip


def _distribution_version(*names: str) -> str:
    """The version of the first installed distribution of names, or "none"."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "none"


def package_key(model: nn.Module, preset: Preset, precision: str, shape: tuple[int, int], device,
                rewrites: _layout.Rewrites, options: dict | None = None, kernels: str = "traced") -> str:  # fmt: skip
    """The cache key of one package (file name without .pt2); model is the caller's unmodified fp32 model."""
    gpu_name, capability = gpu_identity(device)
    extra = dict(hparams=preset.hparams, n_mels=preset.n_mels, hop=preset.hop_length, rewrites=rewrites.key(),
                 options=options or {}, **versions())  # fmt: skip
    if rewrites.fused:
        extra["kernels"] = kernels_digest()
        if kernels != "traced":  # a package that calls our operators back (build's doc)
            extra["kernels_compiled_as"] = kernels
    return engine_key(weights_digest(model), preset.name, precision, [shape], gpu_name, capability, "aoti", extra)


def package_path(cache_dir, key: str) -> Path:
    """Where a package with this key lives: <cache_dir>/aoti/<key>.pt2 (cache_dir None: $BATCHVOC_CACHE, else
    ~/.cache/batchvoc, as the config's default)."""
    folder = cache_dir or os.environ.get("BATCHVOC_CACHE") or Path.home() / ".cache" / "batchvoc"
    return Path(folder, "aoti", f"{key}.pt2")


# engine options that change how a package is run, not what it holds: a plan of packages takes and ignores them
RUN_OPTIONS = ("cuda_graphs", "cudnn_benchmark")


def plan_packages(model: nn.Module, preset: Preset, precision: str, device, shapes, cache_dir=None,
                  kernels: str = "traced", **options) -> list[tuple[tuple[int, int], str, Path]]:  # fmt: skip
    """[(shape, key, path), ...]: the packages an aoti engine of these arguments uses (built or not). options: the
    aoti engine's (layout=, antialias=, ... as for build; RUN_OPTIONS taken and ignored)."""
    rewrites = {k: v for k, v in options.items() if k not in RUN_OPTIONS}
    target = build_target("aoti", preset.hop_length, precision, device, shapes)
    chosen = _layout.choose(**rewrites, device=target.device, backend="aoti")
    configs = inductor_configs(chosen)
    out = []
    for shape in target.shapes:
        key = package_key(model, preset, target.precision, shape, target.device, chosen, configs, kernels)
        out.append((shape, key, package_path(cache_dir, key)))
    return out


# The package keeps its weights as files beside its code, not inside its .so: compiled in, they share one GPU
# allocation, each at a 64-byte multiple (AOTI_CONST_ALIGNMENT), and our TMA and cuDNN convolutions then ran 3-7%
# slower than on the same weights where the caching allocator puts each (512-byte multiples): on an H100, gsv_v4 fp16
# batch 16, the stream 0.981 of the inductor engine's speed, 1.000 with the weights loaded apart (BENCHMARKS.md)
WEIGHTS_APART = {"aot_inductor.package_constants_in_so": False,
                 "aot_inductor.package_constants_on_disk_format": "pickle_weights"}  # fmt: skip


def inductor_configs(rewrites: _layout.Rewrites) -> dict:
    """AOTInductor's settings: the weights as files of their own (WEIGHTS_APART); layout optimisation forced for
    channels_last_2d (as the inductor engine does)."""
    forced = {"force_layout_optimization": True} if rewrites.layout == "channels_last_2d" else {}
    return {**WEIGHTS_APART, **forced}


def package_weights(path: Path, device: torch.device) -> dict[str, Tensor]:
    """The weights a package keeps as files (WEIGHTS_APART), on device, by their names in the model: {} for a
    package whose weights are compiled into its .so. Each file is one tensor (torch.save), viewed as the
    package's weights_config.json gives its shape, strides and offset (torch's own format, read as torch's
    load_pt2 reads it). Raises KeyError or ValueError for a package whose files do not match its config."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        config = next((n for n in names if n.endswith("/data/aotinductor/model/weights_config.json")), None)
        if config is None:
            return {}
        folder = config[: -len("aotinductor/model/weights_config.json")] + "weights/"
        tensors: dict[str, Tensor] = {}
        weights = {}
        for name, (file, shape, stride, offset) in json.loads(archive.read(config)).items():
            if file not in tensors:
                tensors[file] = torch.load(io.BytesIO(archive.read(folder + file)), map_location=device)
            weights[name] = tensors[file].as_strided(shape, stride, offset)
    return weights


class _Package:
    """A loaded package called as `package(mel, valid) -> audio`: torch's C++ loader run on the two input tensors
    (the graph's only inputs) and its one output. It stands in for torch's AOTICompiledModel, whose module imports
    torch._inductor and torch.export (3-4 s of every actor's start on the H200 image) only to flatten inputs."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def __call__(self, mel: Tensor, valid: Tensor) -> Tensor:
        return self.loader.boxed_run([mel, valid])[0]


def _runners(device: torch.device) -> int:
    """Model instances in the package's container: 2 on a GPU. With one, each call first waits for the previous
    call's GPU work to finish (the container's get_available_model -> wait_for_completion, a CUDA event
    synchronize), and torch's binding holds the GIL through the call: the vocoder stream launches batch N+1 while
    N runs, so the reading, checking and writing threads stood still for each batch's GPU time (BigVGAN's shard
    pipeline ran at half its engine's speed, BENCHMARKS.md). With two, batch N+1 runs on the other instance, and
    by the time N+2 is launched N's audio has been waited for. A CPU runs each call to its end anyway."""
    return 2 if device.type == "cuda" else 1


@functools.cache
def _warn_unless_libstdcxx_is_global() -> None:
    """Once per process: say why the load may crash, where torch came before batchvoc (native.py)."""
    if libstdcxx_is_global():
        return
    log.warning("aoti: torch was imported before batchvoc, so this package's wrapper may bind to torch's copies of "
                "the C++ runtime's internals, which crashes the process while loading on some images (a "
                "segmentation fault; the H200 image's torch 2.11 + g++ 13.3 does). If it does: import batchvoc "
                "before torch, or start Python with LD_PRELOAD=libstdc++.so.6")  # fmt: skip


def _load(path: Path, device: torch.device):
    """The package at path, on device. torch's loader is called directly: `aoti_load_package` first compares the
    package's device metadata with this machine's only to log a warning, and getting that metadata (pick_vec_isa)
    compiles and dlopens one probe per CPU vector ISA, each in a child process that imports torch: 45 s of every
    load on the H200 image (cProfile, BENCHMARKS.md). The public call remains the fallback."""
    _warn_unless_libstdcxx_is_global()
    index = -1
    if device.type == "cuda":  # "cuda" alone is the current device (torch's loader would take -1 as no device)
        index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, _runners(device), index)
    except (AttributeError, TypeError):  # another torch: its own public loader
        from torch import _inductor

        package = _inductor.aoti_load_package(str(path), device_index=index)
        if weights := package_weights(path, device):
            package.load_constants(weights, check_full_update=True, user_managed=True)
        return package
    if weights := package_weights(path, device):  # the package's own copies: shared by its model instances
        loader.load_constants(weights, False, True, True)
    return _Package(loader)


def _export_and_compile(net: nn.Module, example: tuple[Tensor, Tensor], path: Path, configs: dict,
                        kernels: str = "traced") -> None:  # fmt: skip
    """Export net for example's shapes and compile it into the package at path (written via a temp name), our
    operators compiled as `kernels` (ops.compiled_as)."""
    from torch import _inductor  # the compiler: imported only where a package is built (seconds)

    with torch.no_grad(), compiled_as(kernels), warnings.catch_warnings():
        # torch's own pytree code trips its LeafSpec deprecation while packaging (torch 2.13): not ours to act on
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        exported = torch.export.export(net, example, strict=False)
        with tempfile.TemporaryDirectory(prefix=f".{path.stem}.", dir=path.parent) as folder:
            tmp = Path(folder, path.name)  # the package keeps its final name; only its folder is temporary
            _inductor.aoti_compile_and_package(exported, package_path=str(tmp), inductor_configs=configs)
            os.replace(tmp, path)


def get_package(make_net: Callable[[], nn.Module], example: tuple[Tensor, Tensor], path: Path, device: torch.device,
                configs: dict, kernels: str = "traced") -> tuple[object, str]:  # fmt: skip
    """(loaded package, "loaded" | "built"): load path if it is there and loads, else build it, under path's lock.

    make_net() gives the model to export, called only when the package has to be built. Raises filelock.Timeout
    after LOCK_TIMEOUT_S; the build's error, leaving `<path>.failed`; RuntimeError without building where that note
    is under FAILED_TTL_S old (another process failed just now)."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{path}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("aoti: waiting for another process building %s", path.name)
        lock.acquire(timeout=LOCK_TIMEOUT_S)
    try:
        if path.exists():
            try:
                return _load(path, device), "loaded"
            except Exception as exc:  # a stale or corrupt package: build it again
                log.warning("aoti: package %s unusable (%s); rebuilding", path, exc)
        failed = _failed_recently(path)
        if failed:
            note = _failure_note(path)
            raise RuntimeError(f"aoti: building {path.name} failed in another process {failed}; it is tried again "
                               f"{FAILED_TTL_S:.0f} s after that, or once {note} is removed")  # fmt: skip
        took = "on a GPU 1.5-3 min" if torch.device(device).type == "cuda" else "on a CPU 15-100 s"
        log.info("aoti: building %s, once per machine and key (%s; later processes load it in seconds; "
                 "`python -m batchvoc.build` builds it ahead of a job)", path.name, took)  # fmt: skip
        try:
            _export_and_compile(make_net(), example, path, configs, kernels)
        except Exception as err:
            _note_failure(path, err)
            raise
        _failure_note(path).unlink(missing_ok=True)
        return _load(path, device), "built"
    finally:
        lock.release()


def _failure_note(path: Path) -> Path:
    """Where a failed build of the package at path leaves its error: `<path>.failed`."""
    return path.with_name(f"{path.name}.failed")


def _failed_recently(path: Path) -> str:
    """`N s ago: <error>` where a process failed to build the package at path less than FAILED_TTL_S ago, else ""."""
    note = _failure_note(path)
    try:
        age = time.time() - note.stat().st_mtime
        return f"{age:.0f} s ago: {note.read_text(errors='replace').strip()}" if age < FAILED_TTL_S else ""
    except OSError:
        return ""


def _note_failure(path: Path, err: Exception) -> None:
    """Leave `<path>.failed` holding the error's first line, for the processes waiting on the lock."""
    try:
        _failure_note(path).write_text(f"{type(err).__name__}: {first_line(err)[:500]}\n")
    except OSError:  # the cache folder itself may be what failed
        pass


def build(
    model: nn.Module,
    preset: Preset,
    precision: str,
    device,
    shapes,
    cache_dir=None,
    kernels: str = "traced",
    cuda_graphs: bool | None = None,
    **rewrites,
) -> Engine:
    """An AOTInductor Engine for exactly `shapes` [(B, T), ...]: one package per shape, loaded or built (module doc).

    cuda_graphs: replay each shape's package call from a CUDA graph (engines/cuda_graph.py); None: where they pay
    (graphs_pay: batches of up to CUDA_GRAPH_MAX_BATCH rows on a CUDA GPU). A CPU ignores it.
    rewrites: layout=, antialias=, resblocks=, fused_max_channels=, tile_table=, superrows= (engines/layout.py).
    kernels: "traced" (the package launches our operators' kernels itself) or "opaque" (it calls our operators
    back, which launch them as an eager call does: Hopper block copies for the fused convolutions, but the loading
    process defines the operators, importing torch._dynamo and triton). ValueError for another value."""
    check_compiled_as(kernels)
    started = time.perf_counter()
    target = build_target("aoti", preset.hop_length, precision, device, shapes)
    dtype, device = target.dtype, target.device
    graphed = device.type == "cuda" and (graphs_pay(device, target.shapes) if cuda_graphs is None else cuda_graphs)
    chosen = _layout.choose(**rewrites, device=device, backend="aoti")
    configs = inductor_configs(chosen)
    if chosen.fused and kernels == "opaque":
        define_all()  # the package's calls back find them by name
    nets = []

    def make_net() -> nn.Module:  # the laid-out copy, made once and only if a package must be built
        if not nets:
            nets.append(laid_out(model, target, **rewrites)[0])
        return nets[0]

    runners, paths = {}, []
    for shape in target.shapes:
        key = package_key(model, preset, target.precision, shape, device, chosen, configs, kernels)
        path = package_path(cache_dir, key)
        mel, valid = warmup_input(preset.n_mels, shape, preset.silence, dtype, device)
        got = time.perf_counter()
        runners[shape], how = get_package(make_net, (mel, valid), path, device, configs, kernels)
        paths.append(how)
        first = time.perf_counter()
        if device.type == "cuda":  # a first call per model instance: lazy initialisation (a CPU needs none)
            with torch.inference_mode():
                for _ in range(_runners(device)):
                    runners[shape](mel, valid)
            if graphed:
                runners[shape] = GraphedCall(runners[shape], mel, valid)
            torch.cuda.synchronize(device)
        log.info("aoti: %s %s B=%d T=%d %s in %.2f s, first calls %.2f s (%s)", preset.name, target.precision,
                 *shape, how, first - got, time.perf_counter() - first, path)  # fmt: skip
    nets.clear()

    def run(mel: Tensor, valid: Tensor) -> Tensor:
        if valid.dim() == 2:  # the package takes per-frame spans [B, 2, T]
            valid = valid.unsqueeze(-1).expand(-1, -1, mel.shape[-1])
        return runners[(mel.shape[0], mel.shape[-1])](mel.contiguous(), valid.contiguous())

    load_path = "loaded" if all(p == "loaded" for p in paths) else "built"
    folder = package_path(cache_dir, "x").parent
    details = f"{_layout.describe(chosen, model)}" + (f" kernels={kernels}" if chosen.fused else "")
    details += f" cache={folder}" + (" cuda_graphs=on" if graphed else "")
    return target.engine(run, details, load_path=load_path, build_s=time.perf_counter() - started)
