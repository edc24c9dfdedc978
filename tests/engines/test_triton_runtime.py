"""engines/triton_runtime.py: where an operator launches its Triton kernels, and how (as it is, or for a trace)."""

from __future__ import annotations

import pytest
import torch

from batchvoc.engines.triton_runtime import launcher, pow2_between, traced, use_triton


def test_kernels_run_on_cuda_tensors_and_cpu_ones_take_plain_torch(monkeypatch):
    """A CUDA tensor (here a fake one: this machine has no GPU) gets the kernels where triton is installed; a CPU
    tensor gets the plain-torch path, unless Triton's interpreter is on and the tensor has data."""
    triton = pytest.importorskip("triton", reason="triton is not installed (GPU machines have it)")
    from torch._subclasses.fake_tensor import FakeTensorMode

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with FakeTensorMode():
        on_gpu, on_cpu = torch.empty(2, device="cuda"), torch.empty(2)
    assert traced(on_gpu) and traced(on_cpu) and not traced(torch.empty(2))
    assert use_triton(on_gpu) and not use_triton(on_cpu) and not use_triton(torch.empty(2))
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert use_triton(torch.empty(2)) and not use_triton(on_cpu)  # the interpreter cannot run a trace's stand-in
    assert triton is not None


def test_a_launch_is_wrapped_for_a_trace_only():
    pytest.importorskip("triton", reason="triton is not installed (GPU machines have it)")
    from torch._higher_order_ops.triton_kernel_wrap import TraceableTritonKernelWrapper
    from torch._subclasses.fake_tensor import FakeTensorMode

    from batchvoc.engines import span_kernels

    kernel = span_kernels.utterance_bounds
    with FakeTensorMode():
        fake = torch.empty(2, device="cuda")
    assert launcher(kernel, torch.empty(2)) is kernel
    assert isinstance(launcher(kernel, fake), TraceableTritonKernelWrapper)


def test_pow2_between_clamps_to_the_range():
    assert [pow2_between(n, 16, 64) for n in (1, 16, 17, 64, 65, 500)] == [16, 16, 32, 64, 64, 64]
