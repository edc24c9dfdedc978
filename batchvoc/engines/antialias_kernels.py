"""The Triton kernels behind engines/fused_antialias.py (its docstring says what they compute).

Imported only where they run (a CUDA GPU, or Triton's interpreter), so batchvoc imports without triton.
"""

import triton
import triton.language as tl

from batchvoc.engines.span_kernels import utterance_bounds


@triton.jit
def own_utterance(pos, row_valid_ptr, svk, svf, rate):
    """Sample positions clamped into their own utterance (`Span.edge` at `rate` samples per frame)."""
    lo, hi = utterance_bounds(pos, row_valid_ptr, svk, svf, rate)
    return tl.minimum(tl.maximum(pos, lo), hi - 1)


@triton.jit
def up_snake(x_ptr, a_ptr, alpha_ptr, inv_ptr, taps_ptr, valid_ptr, C, T, rate,
             sxb, sxc, sxt, sab, sac, sat, svb, svk, svf,
             FIRST0: tl.constexpr, FIRST1: tl.constexpr, TAPS: tl.constexpr, HAS_SPAN: tl.constexpr,
             FAST_SIN: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):  # fmt: skip
    b = tl.program_id(2)
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (m < 2 * T)[:, None] & (c < C)[None, :]
    j = m // 2
    odd = (m % 2) == 1
    first = tl.where(odd, FIRST1, FIRST0)
    acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
    for k in tl.static_range(TAPS):
        pos = tl.minimum(tl.maximum(j + first + k, 0), T - 1)
        if HAS_SPAN:
            pos = own_utterance(pos, valid_ptr + b * svb, svk, svf, rate)
        xv = tl.load(x_ptr + b * sxb + c[None, :] * sxc + pos[:, None] * sxt, mask=mask, other=0.0)
        tap = tl.where(odd, tl.load(taps_ptr + TAPS + k), tl.load(taps_ptr + k))
        acc += tap[:, None] * xv.to(tl.float32)
    alpha = tl.load(alpha_ptr + c, mask=c < C, other=1.0)[None, :]
    inv = tl.load(inv_ptr + c, mask=c < C, other=0.0)[None, :]
    phase = acc * alpha
    if FAST_SIN:  # reduce to [-pi, pi], then the hardware's approximate sine (abs error ~1e-6 there)
        phase = phase - 6.283185307179586 * tl.floor(phase * 0.15915494309189535 + 0.5)
        s = tl.inline_asm_elementwise("sin.approx.f32 $0, $1;", "=r,r", [phase], dtype=tl.float32, is_pure=True,
                                      pack=1)  # fmt: skip
    else:
        s = tl.sin(phase)
    out = acc + inv * s * s
    tl.store(a_ptr + b * sab + c[None, :] * sac + m[:, None] * sat, out.to(a_ptr.dtype.element_ty), mask=mask)


@triton.jit
def down(a_ptr, y_ptr, taps_ptr, valid_ptr, C, T, rate,
         sab, sac, sat, syb, syc, syt, svb, svk, svf,
         LEFT: tl.constexpr, TAPS: tl.constexpr, HAS_SPAN: tl.constexpr,
         BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):  # fmt: skip
    b = tl.program_id(2)
    j = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (j < T)[:, None] & (c < C)[None, :]
    up_rate = 2 * rate
    acc = tl.zeros([BLOCK_T, BLOCK_C], dtype=tl.float32)
    for k in tl.static_range(TAPS):
        pos = tl.minimum(tl.maximum(2 * j - LEFT + k, 0), 2 * T - 1)
        if HAS_SPAN:
            pos = own_utterance(pos, valid_ptr + b * svb, svk, svf, up_rate)
        av = tl.load(a_ptr + b * sab + c[None, :] * sac + pos[:, None] * sat, mask=mask, other=0.0)
        acc += tl.load(taps_ptr + k) * av.to(tl.float32)
    tl.store(y_ptr + b * syb + c[None, :] * syc + j[:, None] * syt, acc.to(y_ptr.dtype.element_ty), mask=mask)
