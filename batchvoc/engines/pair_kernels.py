"""The Triton kernel behind engines/fused_pair.py: a ResBlock1 pair (two convolutions) in one launch, the first
conv's output kept on chip apart from a per-program scratch slot that stays in L2.

Imported only where it runs (a CUDA GPU, or Triton's interpreter), so batchvoc imports without triton.
"""

import triton
import triton.language as tl

from batchvoc.engines.conv_kernels import _finish, _tap_product
from batchvoc.engines.span_kernels import utterance_bounds


@triton.jit
def lrelu_conv_pair(x_ptr, res_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr, act_ptr, scratch_ptr, valid_ptr,
                    T, rate, dilation, padding, slope, tiles_per_row, n_tiles,
                    sxb, sxc, sxt, srb, src, srt, sob, soc, sot, svb, svk, svf,
                    C: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr, HAS_SPAN: tl.constexpr,
                    ACTIVATE_INPUT: tl.constexpr, STORE_ACTIVATED: tl.constexpr, DOT_PRECISION: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, STAGES: tl.constexpr):  # fmt: skip
    """out = c2(h) + b2 + res, h = inside * leaky_relu(c1(act_in(x)) + b1) (zero past [0, T)), for one batch row's
    tiles at a time: a persistent program takes tiles pid, pid + programs, ... of n_tiles (tiles_per_row per row).

    A tile computes h on BLOCK_M steps from u0 = tile * (BLOCK_M - 2 P2) - P2 (P2 = (K2 - 1) / 2, c2's same
    padding), stores it to the program's scratch slot [BLOCK_M, BLOCK_C] (re-used by every tile of the program, so
    it stays in L2), and after a barrier convolves the slot's rows with c2's taps: the first BLOCK_M - 2 P2 steps of
    that product are out's (the rest would read past the slot, masked). c1 has K1 taps of `dilation`, `padding`;
    c2 K2 taps of dilation 1. Weights [K, C, C] (the GEMM order), scratch [programs, BLOCK_M, BLOCK_C] of x's
    dtype. STAGES > 0 pipelines c1's tap loop that deep."""
    P2: tl.constexpr = (K2 - 1) // 2
    STEP: tl.constexpr = BLOCK_M - 2 * P2
    r = tl.arange(0, BLOCK_M)
    c = tl.arange(0, BLOCK_C)
    w1_cols = w1_ptr + c[:, None] * C + c[None, :]
    w2_cols = w2_ptr + c[:, None] * C + c[None, :]
    slot = scratch_ptr + tl.program_id(0).to(tl.int64) * (BLOCK_M * BLOCK_C) + c[None, :]
    for tile in tl.range(tl.program_id(0), n_tiles, tl.num_programs(0)):
        b = (tile // tiles_per_row).to(tl.int64)
        t0 = (tile % tiles_per_row) * STEP
        u = t0 - P2 + r  # the steps of h this tile makes
        x_rows = x_ptr + b * sxb + c[None, :] * sxc
        acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
        if STAGES > 0:
            for tap in tl.range(0, K1, num_stages=STAGES):
                acc = _tap_product(acc, x_rows, w1_cols, u, c, c, tap, T, dilation, padding, slope, sxt, C, C,
                                   ACTIVATE_INPUT, DOT_PRECISION)  # fmt: skip
        else:
            for tap in tl.static_range(K1):
                acc = _tap_product(acc, x_rows, w1_cols, u, c, c, tap, T, dilation, padding, slope, sxt, C, C,
                                   ACTIVATE_INPUT, DOT_PRECISION)  # fmt: skip
        acc += tl.load(b1_ptr + c, mask=c < C, other=0.0).to(tl.float32)[None, :]
        acc = tl.where(acc > 0, acc, acc * tl.cast(slope, tl.float32))  # in fp32, as lrelu_conv's activated output
        inside = (u >= 0) & (u < T)  # c2's zero padding
        if HAS_SPAN:
            lo, hi = utterance_bounds(tl.minimum(tl.maximum(u, 0), T - 1), valid_ptr + b * svb, svk, svf, rate)
            inside = inside & (u >= lo) & (u < hi)
        h = tl.where(inside[:, None], acc, 0.0).to(out_ptr.dtype.element_ty)
        tl.debug_barrier()  # the previous tile's reads of the slot are done
        tl.store(slot + r[:, None] * BLOCK_C, h)
        tl.debug_barrier()  # the slot is whole before any program thread reads it
        acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
        for tap in tl.static_range(K2):
            acc = _tap_product(acc, slot, w2_cols, r, c, c, tap, BLOCK_M, 1, 0, slope, BLOCK_C, C, C, False,
                               DOT_PRECISION)  # fmt: skip
        t = tl.where(r < STEP, t0 + r, T)  # steps past STEP read past the slot: masked as if past the row's end
        _finish(acc, b, t, c, T, rate, slope, b2_ptr, res_ptr, out_ptr, act_ptr, valid_ptr, srb, src, srt, sob, soc,
                sot, svb, svk, svf, C, True, HAS_SPAN, False, STORE_ACTIVATED)  # fmt: skip
