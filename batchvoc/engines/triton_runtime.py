"""Where the Triton kernels run: a CUDA GPU with triton installed, or CPU tensors under TRITON_INTERPRET=1 (tests)."""

from __future__ import annotations

import functools
import importlib.util
import os

import torch
from torch import Tensor


def triton_available() -> tuple[bool, str]:
    """(ok, why): the kernels need triton and a CUDA GPU. triton is looked for, not imported (a process that loads
    an AOTInductor package needs no triton: the package holds its kernels compiled)."""
    if importlib.util.find_spec("triton") is None:
        return False, "triton is not installed"
    if not torch.cuda.is_available():
        return False, "no CUDA GPU"
    return True, "triton and a CUDA GPU"


def traced(x: Tensor) -> bool:
    """True when x is a stand-in of a trace (torch.compile, torch.export, AOTInductor: a fake or functional tensor
    without data) rather than a tensor an op runs on."""
    from torch._subclasses.fake_tensor import is_fake

    return is_fake(x)


def launcher(kernel, x: Tensor):
    """kernel as an op on x launches it: in a trace of x, torch.library.wrap_triton(kernel), a launch the compiler
    records and takes over (engines/ops.py); otherwise the kernel itself (no tracing machinery per launch)."""
    if not traced(x):
        return kernel
    from torch.library import wrap_triton

    return wrap_triton(kernel)


def launch_with_descriptors(kernel, grid: tuple[int, ...], blocks: dict[str, list[int]], *args, **kwargs) -> None:
    """kernel[grid](*args, **kwargs), where each argument named in `blocks` is given as a tensor and reaches the
    kernel as a host-made block-copy descriptor of it, `TensorDescriptor.from_tensor(t, blocks[name])`.

    Eager: the descriptors are made here. In a trace (torch.compile, AOTInductor): the launch is recorded as torch's
    own with the descriptors' block shapes (its `tma_descriptor_metadata`), so the compiled code makes them per call
    from the tensors it holds then, as it does for a kernel Dynamo saw called with TensorDescriptor.from_tensor;
    torch's wrap_triton records none outside Dynamo ("TMA descriptor capturing not yet supported in non-dynamo
    tracing", torch/_higher_order_ops/triton_kernel_wrap.py), which left traced launches with pointer loads."""
    named = dict(zip(kernel.arg_names, args, strict=False)) | kwargs  # args: the first parameters
    if not any(traced(named[name]) for name in blocks):
        from triton.tools.tensor_descriptor import TensorDescriptor

        named.update({name: TensorDescriptor.from_tensor(named[name], block) for name, block in blocks.items()})
        kernel[grid](**named)
        return
    from torch._higher_order_ops.triton_kernel_wrap import TraceableTritonKernelWrapper

    wrapper = TraceableTritonKernelWrapper(kernel, None, grid)
    _descriptors_recorded()(blocks).call_triton_kernel(wrapper, [], named, None)


@functools.cache
def _descriptors_recorded() -> type:
    """The class below, made on first use (its base's module imports torch._dynamo: seconds)."""
    from torch._higher_order_ops.triton_kernel_wrap import (
        TracingTritonHOPifier,
        create_tma_stable_metadata,
        triton_kernel_wrapper_mutation,
    )

    class DescriptorsRecorded(TracingTritonHOPifier):
        """torch's tracing of a Triton launch (wrap_triton's), recording `blocks`' arguments as descriptors."""

        def __init__(self, blocks: dict[str, list[int]]):
            self.blocks = blocks

        def call_HOP(self, variable, grids, combined_args, tx):
            graphable, constants = self.store_non_graphable_args(combined_args)
            metadata = {name: create_tma_stable_metadata(list(block)) for name, block in self.blocks.items()}
            return triton_kernel_wrapper_mutation(kernel_idx=variable.kernel_idx, constant_args_idx=constants,
                                                  grid=grids, tma_descriptor_metadata=metadata,
                                                  kwargs=graphable)  # fmt: skip

    return DescriptorsRecorded


def use_triton(x: Tensor) -> bool:
    """True when an op on x should launch its Triton kernels rather than its plain-torch path: x on a CUDA device
    (traced too) with triton installed, or under TRITON_INTERPRET=1 an x with data (the interpreter runs kernels on
    CPU tensors; a trace of x on a CPU gets the plain-torch path, which CPU code can compile)."""
    if not x.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        return False
    return importlib.util.find_spec("triton") is not None and (x.is_cuda or not traced(x))


def channels_last_rows(x: Tensor) -> Tensor:
    """x [B, C, T] with channels-last strides (memory [B, T, C]): x itself where it has them, else a copy. Our
    kernels' fast paths read channels-last rows, and a trace picks its launches from the strides it sees: a
    compiler's own layout choices (Inductor's layout optimisation) come after the trace, so an activation traced
    with [B, C, T] strides got the slow kernels and layout copies around them (BigVGAN's aoti package, H200)."""
    return x if x.stride(1) == 1 else x.transpose(1, 2).contiguous().transpose(1, 2)


def pow2_between(n: int, lo: int, hi: int) -> int:
    """The power of two at or above n, clamped to [lo, hi] (a tile size)."""
    return min(hi, max(lo, 1 << (n - 1).bit_length()))


def span_launch_args(valid: Tensor, stand_in: Tensor) -> tuple[Tensor, tuple[int, ...], bool]:
    """(tensor, strides, has_span) for a kernel's valid [B, 2, F] argument; an empty valid (whole utterances) is
    never read, so `stand_in` passes as a real device pointer with zero strides."""
    has_span = valid.numel() > 0
    return (valid, valid.stride(), True) if has_span else (stand_in, (0, 0, 0), False)


def channels_last_empty(rows: int, channels: int, length: int, like: Tensor) -> Tensor:
    """An uninitialised [rows, channels, length] tensor with channels-last strides (memory [rows, length, channels]),
    like's dtype and device: what our conv kernels write."""
    return torch.empty((rows, length, channels), dtype=like.dtype, device=like.device).transpose(1, 2)


def tile_config(tile: list[int], keys: tuple[str, ...]) -> dict[str, int] | None:
    """An op's `tile` argument (the values of `keys` in order, STAGES 0 for an unpipelined loop) back as a launch
    config; None for an empty list (the op's default tile)."""
    if not tile:
        return None
    config = dict(zip(keys, (int(v) for v in tile), strict=True))
    if not config.get("STAGES", 1):
        del config["STAGES"]
    return config
