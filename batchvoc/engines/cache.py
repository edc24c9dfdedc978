"""On-disk engine cache: keys that change whenever a built engine would, and atomic writes.

A serialized TensorRT engine is only valid for the same weights, architecture, precision, input shapes, GPU
model / compute capability and TensorRT (and torch-tensorrt) version; the key hashes all of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn


def weights_digest(model: nn.Module) -> str:
    """sha256 over the model's state dict (names, dtypes, shapes and bytes), hex."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def gpu_identity(device: torch.device | str) -> tuple[str, str]:
    """(GPU name, compute capability "sm_XY") of a CUDA device; ("cpu", "none") otherwise."""
    device = torch.device(device)
    if device.type != "cuda":
        return "cpu", "none"
    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f"sm_{major}{minor}"


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

    extra: anything else the engine depends on (builder options, torch-tensorrt version, hparams), JSON-able.
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
