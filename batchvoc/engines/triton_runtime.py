"""Where the Triton kernels run: a CUDA GPU with triton installed, or CPU tensors under TRITON_INTERPRET=1 (tests)."""

from __future__ import annotations

import importlib.util
import os

import torch
from torch import Tensor


def triton_available() -> tuple[bool, str]:
    """(ok, why): the kernels need triton and a CUDA GPU."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False, "triton is not installed"
    if not torch.cuda.is_available():
        return False, "no CUDA GPU"
    return True, "triton and a CUDA GPU"


def use_triton(x: Tensor) -> bool:
    """True when an op on x should launch its Triton kernel rather than its plain-torch path."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return importlib.util.find_spec("triton") is not None
    return x.is_cuda and triton_available()[0]
