"""The Triton kernel behind engines/fused_resblock.py (its docstring says what it computes).

Imported only where it runs (a CUDA GPU, or Triton's interpreter), so batchvoc imports without triton.
"""

import triton
import triton.language as tl


@triton.jit
def lrelu_conv(x_ptr, w_ptr, bias_ptr, res_ptr, out_ptr, valid_ptr, T, C_IN, C_OUT, rate, dilation, padding, slope,
               sxb, sxc, sxt, srb, src, srt, sob, soc, sot, svb, svk, svf,
               KSIZE: tl.constexpr, HAS_RES: tl.constexpr, HAS_SPAN: tl.constexpr, DOT_PRECISION: tl.constexpr,
               APPLY_ACT: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):  # fmt: skip
    """One [BLOCK_M time steps, BLOCK_N output channels] tile of one batch row, as an implicit GEMM over
    (tap, input channel); the leaky ReLU and the span's zeroing are applied to each input tile as it is loaded."""
    b = tl.program_id(2).to(tl.int64)
    t = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    k = tl.arange(0, BLOCK_K)
    x_row = x_ptr + b * sxb
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for tap in tl.static_range(KSIZE):
        s = t + tap * dilation - padding  # input sample read by each output step for this tap
        ok = (s >= 0) & (s < T)
        if HAS_SPAN:  # zero outside each sample's own utterance (Span.zero)
            frame = tl.minimum(tl.maximum(s, 0), T - 1) // rate
            lo = tl.load(valid_ptr + b * svb + frame * svf).to(tl.int32) * rate
            hi = tl.load(valid_ptr + b * svb + svk + frame * svf).to(tl.int32) * rate
            ok = ok & (s >= lo) & (s < hi)
        for c0 in range(0, C_IN, BLOCK_K):
            c = c0 + k
            a = tl.load(x_row + c[None, :] * sxc + s[:, None] * sxt, mask=ok[:, None] & (c < C_IN)[None, :], other=0.0)
            if APPLY_ACT:
                af = a.to(tl.float32)
                a = tl.where(af > 0, af, af * slope).to(a.dtype)  # rounded to the input dtype, as the reference is
            w = tl.load(w_ptr + (tap * C_IN + c)[:, None] * C_OUT + n[None, :],
                        mask=(c < C_IN)[:, None] & (n < C_OUT)[None, :], other=0.0)  # fmt: skip
            acc = tl.dot(a, w, acc, input_precision=DOT_PRECISION)
    acc += tl.load(bias_ptr + n, mask=n < C_OUT, other=0.0)[None, :]
    mask = (t < T)[:, None] & (n < C_OUT)[None, :]
    if HAS_RES:
        acc += tl.load(res_ptr + b * srb + n[None, :] * src + t[:, None] * srt, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + b * sob + n[None, :] * soc + t[:, None] * sot, acc.to(out_ptr.dtype.element_ty), mask=mask)
