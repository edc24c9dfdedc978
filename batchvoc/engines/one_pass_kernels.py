"""The one-pass Triton kernels behind engines/fused_antialias.py (its docstring says what they compute).

For a tile of outputs, `one_pass_recompute` recomputes the 2x-rate activation `a` at each of the low-pass's
positions; `one_pass_gather` computes it once over the tile plus its halo and reads the shifted rows on chip
(tl.gather), and `one_pass_dot` low-passes those rows as one banded matrix product (tensor cores). None stores `a`.
The device functions they share with the two-pass kernels are in engines/antialias_kernels.py.

Imported only where they run (a CUDA GPU, or Triton's interpreter), so batchvoc imports without triton.
"""

import triton
import triton.language as tl

from batchvoc.engines.antialias_kernels import aligned, down_position, output_tile, tile_inside, upsampled_snake


@triton.jit
def one_pass_recompute(x_ptr, y_ptr, alpha_ptr, inv_ptr, up_ptr, down_ptr, valid_ptr, C, T, rate,
                       sxb, sxc, sxt, syb, syc, syt, svb, svk, svf,
                       FIRST0: tl.constexpr, FIRST1: tl.constexpr, UP_TAPS: tl.constexpr, LEFT: tl.constexpr,
                       DOWN_TAPS: tl.constexpr, HAS_SPAN: tl.constexpr, FAST_SIN: tl.constexpr,
                       BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):  # fmt: skip
    """y [B, C, T] for a BLOCK_T x BLOCK_C tile of outputs, `a` recomputed at each low-pass tap's position."""
    b, j, c, mask = output_tile(C, T, BLOCK_T, BLOCK_C)
    alpha = tl.load(alpha_ptr + c, mask=c < C, other=1.0)[None, :]
    inv = tl.load(inv_ptr + c, mask=c < C, other=0.0)[None, :]
    x_row, row_valid = x_ptr + b * sxb, valid_ptr + b * svb
    acc = tl.zeros([BLOCK_T, BLOCK_C], dtype=tl.float32)
    for k in range(DOWN_TAPS):  # a loop, not unrolled: 12 unrolled copies of the up-filter compile for a minute
        m = down_position(2 * j - LEFT + k, T, row_valid, svk, svf, rate, HAS_SPAN)
        a = upsampled_snake(x_row, c[None, :] * sxc, mask, m, up_ptr, alpha, inv, row_valid, T, rate, sxt, svk,
                            svf, FIRST0, FIRST1, UP_TAPS, HAS_SPAN, FAST_SIN, True)  # fmt: skip
        acc += tl.load(down_ptr + k) * a.to(x_ptr.dtype.element_ty).to(tl.float32)  # rounded as `a` is stored
    tl.store(y_ptr + b * syb + c[None, :] * syc + j[:, None] * syt, acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def one_pass_tile(x_ptr, alpha_ptr, inv_ptr, up_ptr, valid_ptr, C, T, rate, sxb, sxc, sxt, svb, svk, svf,
                  FIRST0: tl.constexpr, FIRST1: tl.constexpr, UP_TAPS: tl.constexpr, LEFT: tl.constexpr,
                  HAS_SPAN: tl.constexpr, FAST_SIN: tl.constexpr, ALIGN: tl.constexpr, ROWS: tl.constexpr,
                  STEP: tl.constexpr, BLOCK_C: tl.constexpr):  # fmt: skip
    """The tile both one-pass kernels start from: (row b, first output j0, channels c, channel mask, `a`
    [ROWS, BLOCK_C] at the ROWS 2x-rate positions outputs j0.. read, edges applied, in x's dtype as the two-pass
    kernels store it). Tiles whose x window is inside the row and one utterance skip the edge arithmetic (the
    edges map those positions to themselves; then so are the 2x-rate rows, whose halves lie in that window)."""
    C, sxt = aligned(C, sxt, ALIGN)
    b = tl.program_id(2)
    j0 = tl.program_id(0) * STEP
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = (c < C)[None, :]
    alpha = tl.load(alpha_ptr + c[None, :], mask=cmask, other=1.0)
    inv = tl.load(inv_ptr + c[None, :], mask=cmask, other=0.0)
    x_row, row_valid = x_ptr + b * sxb, valid_ptr + b * svb
    r = tl.arange(0, ROWS)
    m0, mask = 2 * j0 - LEFT, (r >= 0)[:, None] & cmask
    lo: tl.constexpr = FIRST0 if FIRST0 < FIRST1 else FIRST1
    hi: tl.constexpr = FIRST1 + UP_TAPS - 1 if FIRST0 < FIRST1 else FIRST0 + UP_TAPS - 1
    x_first, x_last = m0 // 2 + lo, (m0 + ROWS - 1) // 2 + hi
    if (m0 >= 0) & tile_inside(x_first, x_last, T, row_valid, svk, svf, rate, HAS_SPAN):
        a = upsampled_snake(x_row, c[None, :] * sxc, mask, m0 + r, up_ptr, alpha, inv, row_valid, T, rate, sxt,
                            svk, svf, FIRST0, FIRST1, UP_TAPS, HAS_SPAN, FAST_SIN, False)  # fmt: skip
    else:
        m = down_position(m0 + r, T, row_valid, svk, svf, rate, HAS_SPAN)
        a = upsampled_snake(x_row, c[None, :] * sxc, mask, m, up_ptr, alpha, inv, row_valid, T, rate, sxt, svk,
                            svf, FIRST0, FIRST1, UP_TAPS, HAS_SPAN, FAST_SIN, True)  # fmt: skip
    return b, j0, c, cmask, a.to(x_ptr.dtype.element_ty)


@triton.jit
def one_pass_gather(x_ptr, y_ptr, alpha_ptr, inv_ptr, up_ptr, down_ptr, valid_ptr, C, T, rate,
                    sxb, sxc, sxt, syb, syc, syt, svb, svk, svf,
                    FIRST0: tl.constexpr, FIRST1: tl.constexpr, UP_TAPS: tl.constexpr, LEFT: tl.constexpr,
                    DOWN_TAPS: tl.constexpr, HAS_SPAN: tl.constexpr, FAST_SIN: tl.constexpr, ALIGN: tl.constexpr,
                    ROWS: tl.constexpr, STEP: tl.constexpr, BLOCK_C: tl.constexpr):  # fmt: skip
    """y [B, C, T] for STEP outputs x BLOCK_C channels: `a` at the ROWS 2x-rate positions they read (edges
    applied), computed once, then each low-pass tap's rows gathered on chip. STEP = (ROWS - DOWN_TAPS) // 2 + 1."""
    b, j0, c, cmask, a = one_pass_tile(x_ptr, alpha_ptr, inv_ptr, up_ptr, valid_ptr, C, T, rate, sxb, sxc, sxt, svb,
                                       svk, svf, FIRST0, FIRST1, UP_TAPS, LEFT, HAS_SPAN, FAST_SIN, ALIGN, ROWS,
                                       STEP, BLOCK_C)  # fmt: skip
    _, syt = aligned(C, syt, ALIGN)
    i = tl.arange(0, ROWS // 2)
    acc = tl.zeros([ROWS // 2, BLOCK_C], dtype=tl.float32)
    for k in tl.static_range(DOWN_TAPS):
        rows = tl.broadcast_to(tl.minimum(2 * i + k, ROWS - 1)[:, None], (ROWS // 2, BLOCK_C))
        acc += tl.load(down_ptr + k) * tl.gather(a, rows, 0).to(tl.float32)
    j = j0 + i
    mask = ((i < STEP) & (j < T))[:, None] & cmask
    tl.store(y_ptr + b * syb + c[None, :] * syc + j[:, None] * syt, acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def product(p, a, acc, IEEE: tl.constexpr):
    """acc + p @ a; IEEE: in float32 (Triton's interpreter, whose bf16 products are wrong; same values)."""
    if IEEE:
        return tl.dot(p.to(tl.float32), a.to(tl.float32), acc, input_precision="ieee")
    return tl.dot(p, a, acc)


@triton.jit
def split_dot(d, a, PARTS: tl.constexpr, IEEE: tl.constexpr):
    """d [M, K] float32 @ a [K, N] (x's dtype, exact) with float32 accumulation: d split into PARTS terms of a's
    dtype (fp16: 2, 11 bits each; bf16: 3, 8 bits each) so the taps keep float32's precision on tensor cores;
    float32 a takes one IEEE product."""
    acc = tl.zeros([d.shape[0], a.shape[1]], dtype=tl.float32)
    if PARTS == 1:
        return tl.dot(d, a, acc, input_precision="ieee")
    hi = d.to(a.dtype)
    rest = d - hi.to(tl.float32)
    mid = rest.to(a.dtype)
    acc = product(mid, a, product(hi, a, acc, IEEE), IEEE)
    if PARTS == 3:
        acc = product((rest - mid.to(tl.float32)).to(a.dtype), a, acc, IEEE)
    return acc


@triton.jit
def one_pass_dot(x_ptr, y_ptr, alpha_ptr, inv_ptr, up_ptr, down_ptr, valid_ptr, C, T, rate,
                 sxb, sxc, sxt, syb, syc, syt, svb, svk, svf,
                 FIRST0: tl.constexpr, FIRST1: tl.constexpr, UP_TAPS: tl.constexpr, LEFT: tl.constexpr,
                 DOWN_TAPS: tl.constexpr, HAS_SPAN: tl.constexpr, FAST_SIN: tl.constexpr, ALIGN: tl.constexpr,
                 PARTS: tl.constexpr, IEEE: tl.constexpr, ROWS: tl.constexpr, STEP: tl.constexpr,
                 BLOCK_C: tl.constexpr):  # fmt: skip
    """`one_pass_gather`'s tile, its low-pass as one banded matrix product on tensor cores: y = D @ a with
    D[i, r] = down[r - 2i] ([ROWS // 2, ROWS]), `a` as the ROWS 2x-rate rows (edges applied). BLOCK_C >= 16."""
    b, j0, c, cmask, a = one_pass_tile(x_ptr, alpha_ptr, inv_ptr, up_ptr, valid_ptr, C, T, rate, sxb, sxc, sxt, svb,
                                       svk, svf, FIRST0, FIRST1, UP_TAPS, LEFT, HAS_SPAN, FAST_SIN, ALIGN, ROWS,
                                       STEP, BLOCK_C)  # fmt: skip
    _, syt = aligned(C, syt, ALIGN)
    i = tl.arange(0, ROWS // 2)
    k = tl.arange(0, ROWS)[None, :] - 2 * i[:, None]
    band = tl.load(down_ptr + k, mask=(k >= 0) & (k < DOWN_TAPS), other=0.0)
    acc = split_dot(band, a, PARTS, IEEE)
    j = j0 + i
    mask = ((i < STEP) & (j < T))[:, None] & cmask
    tl.store(y_ptr + b * syb + c[None, :] * syc + j[:, None] * syt, acc.to(y_ptr.dtype.element_ty), mask=mask)
