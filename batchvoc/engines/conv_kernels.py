"""The Triton kernel behind engines/fused_resblock.py (its docstring says what it computes).

Imported only where it runs (a CUDA GPU, or Triton's interpreter), so batchvoc imports without triton.
"""

import triton
import triton.language as tl

from batchvoc.engines.span_kernels import utterance_bounds


@triton.jit
def lrelu_conv(x_ptr, w_ptr, bias_ptr, res_ptr, out_ptr, valid_ptr, T, rate, dilation, padding, slope,
               sxb, sxc, sxt, srb, src, srt, sob, soc, sot, svb, svk, svf,
               C_IN: tl.constexpr, C_OUT: tl.constexpr, KSIZE: tl.constexpr, HAS_RES: tl.constexpr,
               HAS_SPAN: tl.constexpr, DOT_PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
               BLOCK_C: tl.constexpr):  # fmt: skip
    """One [BLOCK_M time steps, BLOCK_N output channels] tile of one batch row: per tap, one matrix product of the
    [BLOCK_M, C_IN] input rows that tap reads (leaky ReLU applied as they are loaded) with the tap's [C_IN, BLOCK_N]
    weights. BLOCK_C (a power of two >= C_IN) spans all input channels, so with channels-last x (sxc == 1) every
    row is one contiguous, vectorised load; neighbouring taps re-read the same rows from L1."""
    b = tl.program_id(2).to(tl.int64)
    t = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    c = tl.arange(0, BLOCK_C)
    c_ok = c < C_IN
    x_rows = x_ptr + b * sxb + c[None, :] * sxc
    w_cols = w_ptr + c[:, None] * C_OUT + n[None, :]
    w_ok = c_ok[:, None] & (n < C_OUT)[None, :]
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for tap in tl.static_range(KSIZE):
        s = t + (tap * dilation - padding)  # the input sample each step reads through this tap
        a = tl.load(x_rows + s[:, None] * sxt, mask=((s >= 0) & (s < T))[:, None] & c_ok[None, :], other=0.0)
        af = a.to(tl.float32)
        a = tl.where(af > 0, af, af * slope).to(a.dtype)  # rounded to the input dtype, as the reference is
        w = tl.load(w_cols + tap * C_IN * C_OUT, mask=w_ok, other=0.0)
        acc = tl.dot(a, w, acc, input_precision=DOT_PRECISION)
    acc += tl.load(bias_ptr + n, mask=n < C_OUT, other=0.0).to(tl.float32)[None, :]
    mask = (t < T)[:, None] & (n < C_OUT)[None, :]
    if HAS_RES:
        acc += tl.load(res_ptr + b * srb + n[None, :] * src + t[:, None] * srt, mask=mask, other=0.0).to(tl.float32)
    if HAS_SPAN:  # Span.zero on the output: every reader of it wants samples outside their utterance zeroed
        lo, hi = utterance_bounds(tl.minimum(t, T - 1), valid_ptr + b * svb, svk, svf, rate)
        acc = tl.where(((t >= lo) & (t < hi))[:, None], acc, 0.0)
    tl.store(out_ptr + b * sob + n[None, :] * soc + t[:, None] * sot, acc.to(out_ptr.dtype.element_ty), mask=mask)
