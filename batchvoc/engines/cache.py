"""On-disk engine cache: keys that change whenever a built engine would, and atomic writes.

A serialized TensorRT engine is only valid for the same weights, architecture, precision, input shapes, GPU
model / compute capability and TensorRT (and torch-tensorrt) version; the key hashes all of them, and the Python the
engine was traced from (`model_code_digest`), so an upgraded or fixed model never loads an engine of the old code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn


def weights_digest(model: nn.Module) -> str:
    """sha256 over the model's state dict (names, dtypes, shapes and bytes), hex.

    Remembered per model for as long as its tensors stay the same objects at the same versions (an in-place
    change, `.to()` or a copy makes it hash again), and `remember_digest` hands over a digest computed elsewhere
    (the driver's, for an actor's copy of the same weights): hashing BigVGAN's 450 MB took ~1 s of every engine
    start on the H200."""
    signature = _signature(model)
    known = _DIGESTS.get(model)
    if known is not None and known[0] == signature:
        return known[1]
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(memoryview(t.view(torch.uint8).numpy()))
    digest = h.hexdigest()
    _DIGESTS[model] = (signature, digest)
    return digest


def remember_digest(model: nn.Module, digest: str) -> None:
    """Take `digest` as weights_digest(model) while model's tensors stay as they are now (the caller vouches that
    it is the digest of exactly these weights, e.g. the driver's for the arrays this model was loaded from)."""
    _DIGESTS[model] = (_signature(model), digest)


_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _signature(model: nn.Module) -> tuple:
    """What a digest stays valid for: each tensor's identity, storage, version counter, dtype and shape."""
    tensors = model.state_dict(keep_vars=True).items()
    return tuple((k, id(t), t.data_ptr(), t._version, t.dtype, tuple(t.shape)) for k, t in tensors)


def gpu_identity(device: torch.device | str) -> tuple[str, str]:
    """(GPU name, compute capability "sm_XY") of a CUDA device; ("cpu", "none") otherwise."""
    device = torch.device(device)
    if device.type != "cuda":
        return "cpu", "none"
    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f"sm_{major}{minor}"


# what a traced engine holds compiled besides the kernels (ops.KERNEL_SOURCES): relative to batchvoc/
MODEL_SOURCES = ("models", "engines/layout.py", "engines/upsample_phases.py")


PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def model_code_digest(root: Path = PACKAGE_ROOT) -> str:
    """sha256 (16 hex digits) of MODEL_SOURCES' Python files under root (batchvoc's folder), in a fixed order."""
    digest = hashlib.sha256()
    for source in MODEL_SOURCES:
        path = root / source
        for file in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def engine_key(
    weights: str,
    preset: str,
    precision: str,
    shapes: Sequence[tuple[int, int]],
    gpu_name: str,
    capability: str,
    trt_version: str,
    extra: dict | None = None,
) -> str:
    """A file-name-safe key: `<preset>-<precision>-<shapes>-<sha256 of every part>[:24]`.

    extra: anything else the engine depends on (builder options, torch-tensorrt version, hparams), JSON-able. The
    model code's digest is always part of it.
    """
    shapes = [list(map(int, s)) for s in shapes]
    parts = dict(
        weights=weights,
        preset=preset,
        precision=precision,
        shapes=shapes,
        gpu=gpu_name,
        capability=capability,
        trt=trt_version,
        code=model_code_digest(),
        extra=extra or {},
    )
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
    shape_tag = "_".join(f"{b}x{t}" for b, t in shapes)
    return f"{_safe(preset)}-{_safe(precision)}-{shape_tag}-{digest}"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._" else "_" for c in text)


def write_atomic(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call write(temp_path) on a temp file next to path, then rename it onto path (no partial file visible)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
