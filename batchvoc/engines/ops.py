"""batchvoc's kernels as torch operators (`batchvoc::name`), registered through torch.library.Library.

    @kernel_op("lrelu_conv", fake=lambda x, weight, *rest: ...)   # the fake: output shapes, strides and dtype
    def lrelu_conv(x: Tensor, weight: Tensor, ...) -> Tensor: ...  # returns torch.ops.batchvoc.lrelu_conv

Not torch.library.custom_op: it wraps every implementation in torch._disable_dynamo, which imports torch._dynamo
at the operator's first call (1.5 s with bytecode caches; on the H200 image, whose site-packages hold none, most
of an aoti engine's 8 s ready time: cProfile, BENCHMARKS.md). An AOTInductor package calls these operators back
through the dispatcher, so a process that only loads a package paid that import. Here the function is the CPU and
CUDA kernel as it is; torch.compile and torch.export keep the operator opaque and use the fake for shapes. The
schema comes from the function's annotations (torch.library.infer_schema); the operators take no gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

_LIB = torch.library.Library("batchvoc", "FRAGMENT")


def kernel_op(name: str, fake: Callable) -> Callable[[Callable], Callable]:
    """Define `batchvoc::name` with the decorated function as its CPU and CUDA kernel and `fake` as its fake
    (meta) function; the decorator returns the operator (torch.ops.batchvoc.name), called like the function."""

    def define(fn: Callable) -> Callable:
        _LIB.define(name + torch.library.infer_schema(fn, mutates_args=()))
        for key in ("CPU", "CUDA"):
            _LIB.impl(name, fn, key)
        torch.library.register_fake(f"batchvoc::{name}", fake, lib=_LIB)
        op = getattr(torch.ops.batchvoc, name)
        op.__doc__ = fn.__doc__
        return op

    return define
