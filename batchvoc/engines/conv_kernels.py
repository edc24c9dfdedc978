"""The Triton kernel behind engines/fused_resblock.py (its docstring says what it computes).

Imported only where it runs (a CUDA GPU, or Triton's interpreter), so batchvoc imports without triton.
"""

import triton
import triton.language as tl

from batchvoc.engines.span_kernels import utterance_bounds


@triton.jit
def lrelu_conv(x_ptr, w_ptr, bias_ptr, res_ptr, out_ptr, valid_ptr, T, C_OUT, rate, dilation, padding, slope,
               sxb, sxc, sxt, srb, src, srt, sob, soc, sot, svb, svk, svf,
               C_IN: tl.constexpr, KSIZE: tl.constexpr, HAS_RES: tl.constexpr, HAS_SPAN: tl.constexpr,
               DOT_PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
               BLOCK_K: tl.constexpr):  # fmt: skip
    """One [BLOCK_M time steps, BLOCK_N output channels] tile of one batch row, as an implicit GEMM whose reduction
    runs over j = tap * C_IN + input channel in chunks of BLOCK_K (a chunk spans several taps when channels are
    few, so small layers still make large matrix products); the leaky ReLU is applied to each input chunk as it
    is loaded, the span's zeroing to the output."""
    b = tl.program_id(2).to(tl.int64)
    t = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    x_row = x_ptr + b * sxb
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for j0 in tl.range(0, KSIZE * C_IN, BLOCK_K):
        j = j0 + tl.arange(0, BLOCK_K)
        tap, c = j // C_IN, j % C_IN
        s = t[:, None] + (tap * dilation - padding)[None, :]  # the input sample each (step, j) reads
        ok = (s >= 0) & (s < T) & (j < KSIZE * C_IN)[None, :]
        a = tl.load(x_row + c[None, :] * sxc + s * sxt, mask=ok, other=0.0)
        af = a.to(tl.float32)
        a = tl.where(af > 0, af, af * slope).to(a.dtype)  # rounded to the input dtype, as the reference is
        w = tl.load(w_ptr + j[:, None] * C_OUT + n[None, :], mask=(j < KSIZE * C_IN)[:, None] & (n < C_OUT)[None, :],
                    other=0.0)  # fmt: skip
        acc = tl.dot(a, w, acc, input_precision=DOT_PRECISION)
    acc += tl.load(bias_ptr + n, mask=n < C_OUT, other=0.0).to(tl.float32)[None, :]
    mask = (t < T)[:, None] & (n < C_OUT)[None, :]
    if HAS_RES:
        acc += tl.load(res_ptr + b * srb + n[None, :] * src + t[:, None] * srt, mask=mask, other=0.0).to(tl.float32)
    if HAS_SPAN:  # Span.zero on the output: every reader of it wants samples outside their utterance zeroed
        lo, hi = utterance_bounds(tl.minimum(t, T - 1), valid_ptr + b * svb, svk, svf, rate)
        acc = tl.where(((t >= lo) & (t < hi))[:, None], acc, 0.0)
    tl.store(out_ptr + b * sob + n[None, :] * soc + t[:, None] * sot, acc.to(out_ptr.dtype.element_ty), mask=mask)
