"""The engine interface: a vocoder made fast for one device, precision and a small fixed set of shapes.

Every backend builds an `Engine`: a callable `engine(mel [B, n_mels, T] float32, valid [B, 2] int64)
-> audio [B, T*hop] float32` on the engine's device. The engine moves and casts the input to its device and
precision, runs under inference_mode, and casts the output back to float32; it never changes the shape contract.

Precision policy (all backends): "fp32" | "fp16" | "bf16" means the model's weights and activations in that
dtype (the model is copied and cast; BigVGAN's anti-aliased activations keep their own fp32 math inside the
model). fp16 asked for on a CPU device runs in fp32, with a warning, and the engine reports precision "fp32":
CPU fp16 convolutions are slow emulation and nobody runs them in production. bf16 runs natively on CPU.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from batchvoc.backends import BACKENDS  # noqa: F401 - re-exported (engines.BACKENDS)
from batchvoc.engines import layout as _layout

log = logging.getLogger(__name__)

LOAD_PATHS = ("built", "loaded")  # an engine compiled (or set up) in this process, or loaded from engine.cache_dir
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

Shape = tuple[int, int]  # (batch rows B, frames per row T)


def resolve_precision(precision: str, device: torch.device | str) -> tuple[str, torch.dtype]:
    """(precision actually used, its dtype): fp16 on a CPU device becomes fp32, with a warning."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if precision == "fp16" and torch.device(device).type == "cpu":
        log.warning("fp16 on CPU runs in fp32 (CPU fp16 convolutions are slow emulation); bf16 runs in bf16 on a CPU, "
                    "at a cost in accuracy and not always faster (docs/engines.md)")  # fmt: skip
        precision = "fp32"
    return precision, PRECISIONS[precision]


def cast_model(model: nn.Module, dtype: torch.dtype, device: torch.device | str) -> nn.Module:
    """A copy of model in eval mode, on device, in dtype; the caller's model is untouched."""
    return copy.deepcopy(model).eval().requires_grad_(False).to(device=device, dtype=dtype)


class Engine:
    """A built vocoder: `engine(mel [B, n_mels, T], valid [B, 2] | None) -> audio [B, T*hop] float32` on `device`.

    shapes: the (B, T) the engine was built for; None accepts any shape (eager). valid=None means every frame
    is real ([0, T] on each row). backend / precision / device are strings for stats and logs; `reason` says
    why this backend was picked; `load_path` is "built" (made in this process) or "loaded" (a package or
    serialized engine read from the cache); `build_s` the seconds the backend took to build or load it.
    """

    def __init__(
        self,
        run: Callable[[Tensor, Tensor], Tensor],
        *,
        backend: str,
        precision: str,
        device: torch.device | str,
        hop: int,
        shapes: Sequence[Shape] | None = None,
        reason: str = "",
        details: str = "",
        load_path: str = "built",
        build_s: float = 0.0,
    ):
        self._run = run
        self.backend = backend
        self.precision = precision
        self.device = str(torch.device(device))
        self.dtype = PRECISIONS[precision]
        self.hop = hop
        self.shapes = None if shapes is None else [tuple(s) for s in shapes]
        self.reason = reason
        self.details = details
        self.load_path = load_path
        self.build_s = build_s

    def __call__(self, mel: Tensor, valid: Tensor | None = None) -> Tensor:
        if mel.ndim != 3:
            raise ValueError(f"mel must be [B, n_mels, T], got {tuple(mel.shape)}")
        rows, _, frames = mel.shape
        if self.shapes is not None and (rows, frames) not in self.shapes:
            raise ValueError(f"{self.backend} engine built for (B, T) in {self.shapes}, got {(rows, frames)}")
        if valid is None:
            valid = whole_rows(rows, frames)
        with torch.inference_mode():
            x = _to_device(mel, self.device).to(self.dtype)
            v = _to_device(valid.to(torch.int64), self.device).contiguous()
            audio = self._run(x, v)
        audio = audio.reshape(rows, -1)
        if audio.shape[1] != frames * self.hop:
            raise RuntimeError(f"model returned {audio.shape[1]} samples per row, expected {frames * self.hop}")
        return audio.float()

    def describe(self) -> str:
        """One line for logs: backend, precision, device, shapes and how it was chosen/built."""
        shapes = "any" if self.shapes is None else ", ".join(f"{b}x{t}" for b, t in self.shapes)
        parts = [f"backend={self.backend}", f"precision={self.precision}", f"device={self.device}", f"shapes={shapes}",
                 f"{self.load_path} in {self.build_s:.1f} s"]  # fmt: skip
        if self.details:
            parts.append(self.details)
        if self.reason:
            parts.append(f"({self.reason})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"Engine({self.describe()})"


def _to_device(t: Tensor, device: str) -> Tensor:
    """t on device; a CPU tensor bound for a GPU goes through pinned memory, so the copy is queued behind the
    work already on the stream instead of blocking the host until that work is done (what a pageable copy does)."""
    if t.device.type == "cpu" and torch.device(device).type == "cuda" and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def whole_rows(rows: int, frames: int) -> Tensor:
    """valid [rows, 2, frames] int64 saying every frame of every row is one utterance's (the packer's form)."""
    return torch.tensor([0, frames], dtype=torch.int64).view(1, 2, 1).expand(rows, 2, frames)


def warmup_input(model_n_mels: int, shape: Shape, silence: float, dtype: torch.dtype, device) -> tuple[Tensor, Tensor]:
    """A deterministic example batch for warm-up / export: mel [B, n_mels, T] and valid [B, 2, T] (all real)."""
    rows, frames = shape
    gen = torch.Generator().manual_seed(0)
    mel = silence / 2 + torch.randn(rows, model_n_mels, frames, generator=gen)
    return mel.to(device=device, dtype=dtype), whole_rows(rows, frames).contiguous().to(device)


@dataclass(frozen=True)
class Target:
    """What a backend builds for: its name, the precision actually used and its dtype, device, hop and shapes."""

    backend: str
    precision: str
    dtype: torch.dtype
    device: torch.device
    hop: int
    shapes: list[Shape] | None

    def engine(self, run: Callable[[Tensor, Tensor], Tensor], details: str = "", load_path: str = "built",
               build_s: float = 0.0) -> Engine:  # fmt: skip
        """The Engine that calls `run` for this target."""
        return Engine(
            run,
            backend=self.backend,
            precision=self.precision,
            device=self.device,
            hop=self.hop,
            shapes=self.shapes,
            details=details,
            load_path=load_path,
            build_s=build_s,
        )


def static_shapes(shapes: Sequence[Sequence[int]] | None, backend: str) -> list[Shape]:
    """shapes as [(B, T), ...] of ints; a ValueError when there are none (a static-shape backend needs them)."""
    if not shapes:
        raise ValueError(f"{backend} engine needs the shapes it will run: shapes=[(B, T), ...]")
    return [tuple(int(v) for v in s) for s in shapes]


def build_target(backend: str, hop: int, precision: str, device, shapes=None, static: bool = True) -> Target:
    """A build's common prelude: shapes checked (static backends; any shape otherwise), precision resolved."""
    shapes = static_shapes(shapes, backend) if static else None
    precision, dtype = resolve_precision(precision, device)
    return Target(backend, precision, dtype, torch.device(device), hop, shapes)


def laid_out(model: nn.Module, target: Target, **choices: str) -> tuple[nn.Module, _layout.Rewrites]:
    """(the engine's copy of model, rewritten per engines/layout.py and cast; the rewrites, "auto" resolved).

    choices: layout=, antialias=, resblocks= (engines/layout.py), each "auto" when not given."""
    rewrites = _layout.choose(**choices, device=target.device, backend=target.backend)
    rewritten = model if rewrites.none else _layout.apply(model, rewrites)
    return cast_model(rewritten, target.dtype, target.device), rewrites
