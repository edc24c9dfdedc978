"""The Triton kernel behind engines/fused_resblock.py (its docstring says what it computes).

Imported only where it runs (a CUDA GPU, or Triton's interpreter), so batchvoc imports without triton.
"""

import triton
import triton.language as tl

from batchvoc.engines.span_kernels import utterance_bounds


@triton.jit
def _taps_product(acc, tap0, x_row, w_ptr, n, t, T, dilation, padding, slope, sxc, sxt, C_IN: tl.constexpr,
                  C_OUT: tl.constexpr, KSIZE: tl.constexpr, TAPS: tl.constexpr, BLOCK_C: tl.constexpr,
                  DOT_PRECISION: tl.constexpr):  # fmt: skip
    """acc + leaky_relu(the input rows taps tap0 .. tap0 + TAPS - 1 read, side by side) @ (those taps' weights)."""
    tap = tap0 + tl.arange(0, TAPS)
    c = tl.arange(0, BLOCK_C)
    s = t[:, None] + (tap * dilation - padding)[None, :]  # [BLOCK_M, TAPS]: the input sample each step reads
    ok = (s >= 0) & (s < T) & (tap < KSIZE)[None, :]
    a = tl.load(x_row + s[:, :, None] * sxt + c[None, None, :] * sxc, mask=ok[:, :, None] & (c < C_IN)[None, None, :],
                other=0.0)  # fmt: skip
    af = a.to(tl.float32)
    a = tl.where(af > 0, af, af * slope).to(a.dtype)  # rounded to the input dtype, as the reference is
    a = tl.reshape(a, [t.shape[0], TAPS * BLOCK_C])
    j = tl.reshape(tap[:, None] * C_IN + c[None, :], [TAPS * BLOCK_C])  # weight row of each (tap, channel)
    j_ok = tl.reshape((tap < KSIZE)[:, None] & (c < C_IN)[None, :], [TAPS * BLOCK_C])
    w = tl.load(w_ptr + j[:, None] * C_OUT + n[None, :], mask=j_ok[:, None] & (n < C_OUT)[None, :], other=0.0)
    return tl.dot(a, w, acc, input_precision=DOT_PRECISION)


@triton.jit
def lrelu_conv(x_ptr, w_ptr, bias_ptr, res_ptr, out_ptr, valid_ptr, T, rate, dilation, padding, slope,
               sxb, sxc, sxt, srb, src, srt, sob, soc, sot, svb, svk, svf,
               C_IN: tl.constexpr, C_OUT: tl.constexpr, KSIZE: tl.constexpr, HAS_RES: tl.constexpr,
               HAS_SPAN: tl.constexpr, DOT_PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
               BLOCK_C: tl.constexpr, TAPS: tl.constexpr):  # fmt: skip
    """One [BLOCK_M time steps, BLOCK_N output channels] tile of one batch row: per group of TAPS taps, one matrix
    product of the [BLOCK_M, TAPS * C_IN] input rows those taps read (leaky ReLU applied as they are loaded) with
    their [TAPS * C_IN, BLOCK_N] weights. BLOCK_C (a power of two >= C_IN) spans all input channels, so with
    channels-last x (sxc == 1) every row is one contiguous, vectorised load; neighbouring taps re-read the same
    rows from L1. Grouping taps makes few-channel products large enough for the tensor cores."""
    b = tl.program_id(2).to(tl.int64)
    t = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for tap0 in tl.static_range(0, KSIZE, TAPS):
        acc = _taps_product(acc, tap0, x_ptr + b * sxb, w_ptr, n, t, T, dilation, padding, slope, sxc, sxt, C_IN,
                            C_OUT, KSIZE, TAPS, BLOCK_C, DOT_PRECISION)  # fmt: skip
    acc += tl.load(bias_ptr + n, mask=n < C_OUT, other=0.0).to(tl.float32)[None, :]
    mask = (t < T)[:, None] & (n < C_OUT)[None, :]
    if HAS_RES:
        acc += tl.load(res_ptr + b * srb + n[None, :] * src + t[:, None] * srt, mask=mask, other=0.0).to(tl.float32)
    if HAS_SPAN:  # Span.zero on the output: every reader of it wants samples outside their utterance zeroed
        lo, hi = utterance_bounds(tl.minimum(t, T - 1), valid_ptr + b * svb, svk, svf, rate)
        acc = tl.where(((t >= lo) & (t < hi))[:, None], acc, 0.0)
    tl.store(out_ptr + b * sob + n[None, :] * soc + t[:, None] * sot, acc.to(out_ptr.dtype.element_ty), mask=mask)
