"""The fused convolutions' Triton kernels (engines/conv_kernels.py) as a traced launch compiles them, checked on the
CPU: Triton lowers each kernel to its IR for an H100/H200 (sm_90) target without a GPU."""

from __future__ import annotations

import pytest

triton = pytest.importorskip("triton", reason="triton is not installed (GPU machines have it)")


def _ir(kernel) -> str:
    """The kernel's Triton IR for sm_90 with fp16 tensors, a 64-channel k=3 tile, slopes 0.1 and scale 1."""
    from triton._C.libtriton import ir
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import CUDABackend
    from triton.compiler import ASTSource

    names = kernel.arg_names
    signature = {name: "*fp16" if name.endswith("_ptr") else "i32" for name in names}
    signature["valid_ptr"] = "*i64"
    constants = dict(C_IN=64, C_OUT=64, KSIZE=3, HAS_RES=True, HAS_SPAN=True, ACTIVATE_INPUT=True,
                     ACTIVATE_OUTPUT=True, SPLIT_OUT=False, DOT_PRECISION="tf32", BLOCK_M=128, BLOCK_N=64,
                     BLOCK_C=64, slope=0.1, out_slope=0.1, scale=1.0)  # fmt: skip
    if "STAGES" in names:
        constants["STAGES"] = 3
    if "BOX_C" in names:
        constants["BOX_C"] = 32  # a row of two block copies
    signature.update(dict.fromkeys(constants, "constexpr"))
    source = ASTSource(kernel, signature, {(names.index(k),): v for k, v in constants.items()})
    target = GPUTarget("cuda", 90, 32)
    backend = CUDABackend(target)
    options = backend.parse_options({"enable_fp_fusion": True})  # as given, not Triton's default (it warns)
    context = ir.context()
    ir.load_dialects(context)
    backend.load_dialects(context)
    codegen = backend.get_codegen_implementation(options)
    return str(source.make_ir(target, options, codegen, backend.get_module_map(), context))


@pytest.mark.parametrize("name", ["lrelu_conv", "lrelu_conv_tma", "lrelu_conv_tma_device"])
def test_slopes_and_scale_are_compile_time_constants(name):
    """Inductor and AOTInductor type a Python float argument fp64 where Triton's own launcher types it fp32: as run-time
    arguments, the slopes and scale made a traced launch compile another kernel than an eager one (fp64 arithmetic
    until session 12, 1.3x the time; a cast to fp32 since, still more registers: H200 session 33). As constants,
    every launch compiles the same kernel."""
    from batchvoc.engines import conv_kernels

    kernel = getattr(conv_kernels, name)
    assert {"slope", "out_slope", "scale"} <= {kernel.arg_names[i] for i in kernel.constexprs}


@pytest.mark.parametrize("name", ["lrelu_conv", "lrelu_conv_tma_device"])
def test_leaky_relu_and_epilogue_run_in_fp32(name):
    """No fp64 tensor arithmetic in the kernel, whose products accumulate in fp32."""
    from batchvoc.engines import conv_kernels

    text = _ir(getattr(conv_kernels, name))
    assert "tt.dot" in text
    assert "xf64>" not in text, "fp64 tensor arithmetic in the kernel"
