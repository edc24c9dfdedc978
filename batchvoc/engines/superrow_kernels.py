"""The Triton kernel behind engines/superrow.py (its docstring says what it computes): a fused resblock conv as
block-Toeplitz products of 128-wide super-rows, with lrelu_conv's activations, bias, residual and span zeroing.

Imported only where it runs (a CUDA GPU, or Triton's interpreter), so batchvoc imports without triton.
"""

import triton
import triton.language as tl

from batchvoc.engines.conv_kernels import _leaky
from batchvoc.engines.span_kernels import utterance_bounds


@triton.jit
def superrow_conv(x_ptr, w_ptr, bias_ptr, res_ptr, out_ptr, valid_ptr, T, rate, slope, sxb,
                  srb, src, srt, sob, svb, svk, svf,
                  C_IN: tl.constexpr, C_OUT: tl.constexpr, S: tl.constexpr, M: tl.constexpr, HAS_RES: tl.constexpr,
                  HAS_SPAN: tl.constexpr, ACTIVATE_INPUT: tl.constexpr, ACTIVATE_OUTPUT: tl.constexpr,
                  DOT_PRECISION: tl.constexpr, RES_ROWS: tl.constexpr,
                  SPAN_ROWS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  STAGES: tl.constexpr):  # fmt: skip
    """One [BLOCK_M super-rows, BLOCK_N output features] tile of one batch row: per m in [0, 2M], the [BLOCK_M,
    S C_IN] super-rows q + m - M of channels-last x (rows of S C_IN contiguous elements: x's time stride is C_IN,
    its channel stride 1), leaky ReLU applied as they are loaded, times the block w[m] [S C_IN, BLOCK_N]; then
    lrelu_conv's epilogue per output feature (sample q S + f // C_OUT, channel f % C_OUT). STAGES 0 unrolls the
    loop over m; STAGES > 0 software-pipelines it that deep. out is compact channels-last rows (feature f
    of super-row q at q W_OUT + f); RES_ROWS says the residual is too, SPAN_ROWS that S divides rate (a super-row
    never straddles a frame): both let the epilogue address whole super-rows, vectorised, instead of per element."""
    W_IN: tl.constexpr = S * C_IN
    W_OUT: tl.constexpr = S * C_OUT
    b = tl.program_id(2).to(tl.int64)
    q = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    f = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    k = tl.arange(0, W_IN)
    x_rows = x_ptr + b * sxb + k[None, :]
    w_cols = w_ptr + k[:, None] * W_OUT + f[None, :]
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    if STAGES > 0:
        for m in tl.range(0, 2 * M + 1, num_stages=STAGES):
            acc = _block_product(acc, x_rows, w_cols, q, f, m, T // S, slope, W_IN, W_OUT, M, ACTIVATE_INPUT,
                                 DOT_PRECISION)  # fmt: skip
    else:
        for m in tl.static_range(2 * M + 1):
            acc = _block_product(acc, x_rows, w_cols, q, f, m, T // S, slope, W_IN, W_OUT, M, ACTIVATE_INPUT,
                                 DOT_PRECISION)  # fmt: skip
    _finish_features(acc, b, q, f, T, rate, slope, bias_ptr, res_ptr, out_ptr, valid_ptr, srb, src, srt, sob, svb,
                     svk, svf, C_OUT, S, HAS_RES, HAS_SPAN, ACTIVATE_OUTPUT, RES_ROWS, SPAN_ROWS)  # fmt: skip


@triton.jit
def _block_product(acc, x_rows, w_cols, q, f, m, R, slope, W_IN: tl.constexpr, W_OUT: tl.constexpr,
                   M: tl.constexpr, ACTIVATE_INPUT: tl.constexpr, DOT_PRECISION: tl.constexpr):  # fmt: skip
    """acc + (super-rows q + m - M, pointer-loaded, zero outside [0, R)) @ (block m's [W_IN, BLOCK_N] columns)."""
    r = q + (m - M)
    a = tl.load(x_rows + r[:, None] * W_IN, mask=((r >= 0) & (r < R))[:, None], other=0.0)
    if ACTIVATE_INPUT:
        a = _leaky(a, slope)
    w = tl.load(w_cols + m * W_IN * W_OUT, mask=(f < W_OUT)[None, :], other=0.0)
    return tl.dot(a, w, acc, input_precision=DOT_PRECISION)


@triton.jit
def _finish_features(acc, b, q, f, T, rate, slope, bias_ptr, res_ptr, out_ptr, valid_ptr, srb, src, srt, sob, svb,
                     svk, svf, C_OUT: tl.constexpr, S: tl.constexpr, HAS_RES: tl.constexpr, HAS_SPAN: tl.constexpr,
                     ACTIVATE_OUTPUT: tl.constexpr, RES_ROWS: tl.constexpr, SPAN_ROWS: tl.constexpr):  # fmt: skip
    """conv_kernels._finish for a tile of super-row features: acc [BLOCK_M, BLOCK_N] + bias (+ residual) (leaky
    ReLU'd), zeroed outside the utterances, stored to out, feature f of super-row q being channel f % C_OUT of
    sample q S + f // C_OUT."""
    W_OUT: tl.constexpr = S * C_OUT
    channel = f % C_OUT
    t = q[:, None] * S + (f // C_OUT)[None, :]
    rows = q[:, None] * W_OUT + f[None, :]  # offsets in compact channels-last rows: contiguous along f
    acc += tl.load(bias_ptr + channel, mask=f < W_OUT, other=0.0).to(tl.float32)[None, :]
    mask = (q < T // S)[:, None] & (f < W_OUT)[None, :]
    if HAS_RES:
        if RES_ROWS:
            res = tl.load(res_ptr + b * srb + rows, mask=mask, other=0.0)
        else:
            res = tl.load(res_ptr + b * srb + channel[None, :] * src + t * srt, mask=mask, other=0.0)
        acc += res.to(tl.float32)
    if ACTIVATE_OUTPUT:
        acc = tl.where(acc > 0, acc, acc * tl.cast(slope, tl.float32))
    if HAS_SPAN:
        if SPAN_ROWS:  # one frame per super-row: its bounds once per row
            lo, hi = utterance_bounds(tl.minimum(q * S, T - 1), valid_ptr + b * svb, svk, svf, rate)
            lo, hi = lo[:, None], hi[:, None]
        else:
            lo, hi = utterance_bounds(tl.minimum(t, T - 1), valid_ptr + b * svb, svk, svf, rate)
        acc = tl.where((t >= lo) & (t < hi), acc, 0.0)
    y = acc.to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + b * sob + rows, y, mask=mask)
