"""The two-pass Triton kernels behind engines/fused_antialias.py (its docstring says what they compute), and the
device functions the one-pass kernels (engines/one_pass_kernels.py) share with them.

`up_snake` writes the 2x-rate activation `a` to memory, `down` low-passes and decimates it ("v1"); `up_pairs` and
`down_inside` do the same ("pairs": both phases of `a` from one read of x's window, and tiles inside the row and one
utterance without the edge arithmetic, which maps their positions to themselves).

Imported only where they run (a CUDA GPU, or Triton's interpreter), so batchvoc imports without triton.
"""

import triton
import triton.language as tl

from batchvoc.engines.span_kernels import utterance_bounds


@triton.jit
def own_utterance(pos, row_valid_ptr, svk, svf, rate, length):
    """Sample positions (in [0, length)) clamped into their own utterance (`Span.edge` at `rate` samples per frame),
    and back into [0, length) whatever the spans hold: a compiler runs kernels on made-up spans (AOTInductor's
    compile-time autotuning fills integer inputs with zeros), which must not read outside the row."""
    lo, hi = utterance_bounds(pos, row_valid_ptr, svk, svf, rate)
    return tl.minimum(tl.maximum(tl.minimum(tl.maximum(pos, lo), hi - 1), 0), length - 1)


@triton.jit
def snake(u, alpha, inv, FAST_SIN: tl.constexpr):
    """u + inv * sin(alpha * u)^2 in float32: u [N, BLOCK_C], alpha and inv [1, BLOCK_C]."""
    phase = u * alpha
    if FAST_SIN:  # reduce to [-pi, pi], then the hardware's approximate sine (abs error ~1e-6 there)
        phase = phase - 6.283185307179586 * tl.floor(phase * 0.15915494309189535 + 0.5)
        s = tl.inline_asm_elementwise("sin.approx.f32 $0, $1;", "=r,r", [phase], dtype=tl.float32, is_pure=True,
                                      pack=1)  # fmt: skip
    else:
        s = tl.sin(phase)
    return u + inv * s * s


@triton.jit
def upsampled_snake(x_row, c_off, mask, m, taps_ptr, alpha, inv, row_valid, T, rate, sxt, svk, svf,
                    FIRST0: tl.constexpr, FIRST1: tl.constexpr, TAPS: tl.constexpr, HAS_SPAN: tl.constexpr,
                    FAST_SIN: tl.constexpr, EDGES: tl.constexpr):  # fmt: skip
    """a at the 2x-rate positions m [N] (0 <= m < 2T) of one row: snake of the polyphase upsampled x, float32
    [N, BLOCK_C]. x_row: the row's base pointer; c_off [1, BLOCK_C]: channel offsets; mask [N, BLOCK_C]. EDGES:
    clamp x's positions into the row and their utterance (else the caller knows they are inside both)."""
    j = m // 2
    odd = (m % 2) == 1
    first = tl.where(odd, FIRST1, FIRST0)
    acc = tl.zeros(mask.shape, dtype=tl.float32)
    for k in tl.static_range(TAPS):
        pos = j + first + k
        if EDGES:
            pos = tl.minimum(tl.maximum(pos, 0), T - 1)
            if HAS_SPAN:
                pos = own_utterance(pos, row_valid, svk, svf, rate, T)
        xv = tl.load(x_row + c_off + pos[:, None] * sxt, mask=mask, other=0.0)
        tap = tl.where(odd, tl.load(taps_ptr + TAPS + k), tl.load(taps_ptr + k))
        acc += tap[:, None] * xv.to(tl.float32)
    return snake(acc, alpha, inv, FAST_SIN)


@triton.jit
def down_position(q, T, row_valid, svk, svf, rate, HAS_SPAN: tl.constexpr):
    """The 2x-rate position the low-pass reads for the unpadded position q [N]: replicate-clamped into the row,
    then into its own utterance (`Span.edge` at 2 * rate samples per frame)."""
    pos = tl.minimum(tl.maximum(q, 0), 2 * T - 1)
    if HAS_SPAN:
        pos = own_utterance(pos, row_valid, svk, svf, 2 * rate, 2 * T)
    return pos


@triton.jit
def output_tile(C, T, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):
    """(row b, output times j [BLOCK_T], channels c [BLOCK_C], mask [BLOCK_T, BLOCK_C]) of this program's tile."""
    b = tl.program_id(2)
    j = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    return b, j, c, (j < T)[:, None] & (c < C)[None, :]


@triton.jit
def up_snake(x_ptr, a_ptr, alpha_ptr, inv_ptr, taps_ptr, valid_ptr, C, T, rate,
             sxb, sxc, sxt, sab, sac, sat, svb, svk, svf,
             FIRST0: tl.constexpr, FIRST1: tl.constexpr, TAPS: tl.constexpr, HAS_SPAN: tl.constexpr,
             FAST_SIN: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):  # fmt: skip
    b = tl.program_id(2)
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (m < 2 * T)[:, None] & (c < C)[None, :]
    alpha = tl.load(alpha_ptr + c, mask=c < C, other=1.0)[None, :]
    inv = tl.load(inv_ptr + c, mask=c < C, other=0.0)[None, :]
    out = upsampled_snake(x_ptr + b * sxb, c[None, :] * sxc, mask, m, taps_ptr, alpha, inv, valid_ptr + b * svb,
                          T, rate, sxt, svk, svf, FIRST0, FIRST1, TAPS, HAS_SPAN, FAST_SIN, True)  # fmt: skip
    tl.store(a_ptr + b * sab + c[None, :] * sac + m[:, None] * sat, out.to(a_ptr.dtype.element_ty), mask=mask)


@triton.jit
def down(a_ptr, y_ptr, taps_ptr, valid_ptr, C, T, rate,
         sab, sac, sat, syb, syc, syt, svb, svk, svf,
         LEFT: tl.constexpr, TAPS: tl.constexpr, HAS_SPAN: tl.constexpr,
         BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):  # fmt: skip
    b, j, c, mask = output_tile(C, T, BLOCK_T, BLOCK_C)
    acc = tl.zeros([BLOCK_T, BLOCK_C], dtype=tl.float32)
    for k in tl.static_range(TAPS):
        pos = down_position(2 * j - LEFT + k, T, valid_ptr + b * svb, svk, svf, rate, HAS_SPAN)
        av = tl.load(a_ptr + b * sab + c[None, :] * sac + pos[:, None] * sat, mask=mask, other=0.0)
        acc += tl.load(taps_ptr + k) * av.to(tl.float32)
    tl.store(y_ptr + b * syb + c[None, :] * syc + j[:, None] * syt, acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def aligned(C, sxt, ALIGN: tl.constexpr):
    """(C, sxt) as visible multiples of ALIGN (the launch checks that they are), so channels-last rows of any width
    that ALIGN divides load and store in 16-byte vectors (tl.multiple_of does not mark a scalar argument)."""
    if ALIGN > 1:
        C = C // ALIGN * ALIGN
        sxt = sxt // ALIGN * ALIGN
    return C, sxt


@triton.jit
def tile_inside(first, last, length, row_valid, svk, svf, rate, HAS_SPAN: tl.constexpr):
    """True when the positions first..last (scalars) all lie in [0, length) and, with spans, inside one utterance,
    so the edge mapping leaves every one of them unchanged (each utterance's frames carry its bounds)."""
    inside = (first >= 0) & (last < length)
    if HAS_SPAN:
        lo, hi = utterance_bounds(tl.maximum(first, 0), row_valid, svk, svf, rate)
        lo_last, hi_last = utterance_bounds(tl.minimum(last, length - 1), row_valid, svk, svf, rate)
        inside = inside & (lo == lo_last) & (hi == hi_last) & (lo <= first) & (last < hi)
    return inside


@triton.jit
def pairs_tile(C, T, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr, C_FIRST: tl.constexpr):
    """`output_tile` plus its first time j0; C_FIRST: the grid's first axis walks the channel blocks (a time tile's
    channel blocks run together), else the time tiles."""
    t_axis: tl.constexpr = 1 if C_FIRST else 0
    j0 = tl.program_id(t_axis) * BLOCK_T
    j = j0 + tl.arange(0, BLOCK_T)
    c = tl.program_id(1 - t_axis) * BLOCK_C + tl.arange(0, BLOCK_C)
    return tl.program_id(2), j0, j, c, (j < T)[:, None] & (c < C)[None, :]


@triton.jit
def up_pair_sums(x_row, c_off, mask, j, taps_ptr, T, rate, row_valid, sxt, svk, svf,
                 FIRST0: tl.constexpr, FIRST1: tl.constexpr, TAPS: tl.constexpr, HAS_SPAN: tl.constexpr,
                 EDGES: tl.constexpr):  # fmt: skip
    """(even, odd): the upsampled x at 2x-rate rows 2j and 2j + 1, float32 [N, BLOCK_C], each x row read once for
    both phases. EDGES: clamp positions into the row and their utterance (else j's window is inside both)."""
    lo: tl.constexpr = FIRST0 if FIRST0 < FIRST1 else FIRST1
    reach: tl.constexpr = TAPS + (FIRST1 - FIRST0 if FIRST0 < FIRST1 else FIRST0 - FIRST1)
    even = tl.zeros(mask.shape, dtype=tl.float32)
    odd = tl.zeros(mask.shape, dtype=tl.float32)
    for s in tl.static_range(reach):
        pos = j + (lo + s)
        if EDGES:
            pos = tl.minimum(tl.maximum(pos, 0), T - 1)
            if HAS_SPAN:
                pos = own_utterance(pos, row_valid, svk, svf, rate, T)
        xv = tl.load(x_row + c_off + pos[:, None] * sxt, mask=mask, other=0.0).to(tl.float32)
        if 0 <= lo + s - FIRST0 and lo + s - FIRST0 < TAPS:
            even += tl.load(taps_ptr + (lo + s - FIRST0)) * xv
        if 0 <= lo + s - FIRST1 and lo + s - FIRST1 < TAPS:
            odd += tl.load(taps_ptr + TAPS + (lo + s - FIRST1)) * xv
    return even, odd


@triton.jit
def up_pairs(x_ptr, a_ptr, alpha_ptr, inv_ptr, taps_ptr, valid_ptr, C, T, rate,
             sxb, sxc, sxt, sab, sac, sat, svb, svk, svf,
             FIRST0: tl.constexpr, FIRST1: tl.constexpr, TAPS: tl.constexpr, HAS_SPAN: tl.constexpr,
             FAST_SIN: tl.constexpr, ALIGN: tl.constexpr, C_FIRST: tl.constexpr, BLOCK_T: tl.constexpr,
             BLOCK_C: tl.constexpr):  # fmt: skip
    """`up_snake` per input row: a [B, C, 2T] at rows 2j and 2j + 1 for a BLOCK_T x BLOCK_C tile of x rows j, the
    window's x rows loaded once for both phases; tiles whose window is inside the row and one utterance skip the
    edge arithmetic (the same values: edges map those positions to themselves)."""
    C, sxt = aligned(C, sxt, ALIGN)
    _, sat = aligned(C, sat, ALIGN)
    b, j0, j, c, mask = pairs_tile(C, T, BLOCK_T, BLOCK_C, C_FIRST)
    alpha = tl.load(alpha_ptr + c, mask=c < C, other=1.0)[None, :]
    inv = tl.load(inv_ptr + c, mask=c < C, other=0.0)[None, :]
    x_row, row_valid, c_off = x_ptr + b * sxb, valid_ptr + b * svb, c[None, :] * sxc
    lo: tl.constexpr = FIRST0 if FIRST0 < FIRST1 else FIRST1
    hi: tl.constexpr = FIRST1 + TAPS - 1 if FIRST0 < FIRST1 else FIRST0 + TAPS - 1
    if tile_inside(j0 + lo, j0 + BLOCK_T - 1 + hi, T, row_valid, svk, svf, rate, HAS_SPAN):
        even, odd = up_pair_sums(x_row, c_off, mask, j, taps_ptr, T, rate, row_valid, sxt, svk, svf, FIRST0,
                                 FIRST1, TAPS, HAS_SPAN, False)  # fmt: skip
    else:
        even, odd = up_pair_sums(x_row, c_off, mask, j, taps_ptr, T, rate, row_valid, sxt, svk, svf, FIRST0,
                                 FIRST1, TAPS, HAS_SPAN, True)  # fmt: skip
    a_tile = a_ptr + b * sab + c[None, :] * sac + (2 * j)[:, None] * sat
    tl.store(a_tile, snake(even, alpha, inv, FAST_SIN).to(a_ptr.dtype.element_ty), mask=mask)
    tl.store(a_tile + sat, snake(odd, alpha, inv, FAST_SIN).to(a_ptr.dtype.element_ty), mask=mask)


@triton.jit
def down_sums(a_tile, mask, j, taps_ptr, T, rate, row_valid, sat, svk, svf,
              LEFT: tl.constexpr, TAPS: tl.constexpr, HAS_SPAN: tl.constexpr, EDGES: tl.constexpr):  # fmt: skip
    """The low-pass at outputs j: float32 [N, BLOCK_C] from a's rows 2j - LEFT + k (a_tile: a's row 0 at the tile's
    channels); EDGES: clamp them into the row and their utterance (else j's window is inside both)."""
    acc = tl.zeros(mask.shape, dtype=tl.float32)
    for k in tl.static_range(TAPS):
        pos = 2 * j + (k - LEFT)
        if EDGES:
            pos = down_position(pos, T, row_valid, svk, svf, rate, HAS_SPAN)
        av = tl.load(a_tile + pos[:, None] * sat, mask=mask, other=0.0)
        acc += tl.load(taps_ptr + k) * av.to(tl.float32)
    return acc


@triton.jit
def down_inside(a_ptr, y_ptr, taps_ptr, valid_ptr, C, T, rate,
                sab, sac, sat, syb, syc, syt, svb, svk, svf,
                LEFT: tl.constexpr, TAPS: tl.constexpr, HAS_SPAN: tl.constexpr, ALIGN: tl.constexpr,
                C_FIRST: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):  # fmt: skip
    """`down`, its tiles whose window is inside the row and one utterance without the edge arithmetic."""
    C, sat = aligned(C, sat, ALIGN)
    _, syt = aligned(C, syt, ALIGN)
    b, j0, j, c, mask = pairs_tile(C, T, BLOCK_T, BLOCK_C, C_FIRST)
    row_valid, a_tile = valid_ptr + b * svb, a_ptr + b * sab + c[None, :] * sac
    first, last = 2 * j0 - LEFT, 2 * (j0 + BLOCK_T - 1) - LEFT + TAPS - 1
    if tile_inside(first, last, 2 * T, row_valid, svk, svf, 2 * rate, HAS_SPAN):
        acc = down_sums(a_tile, mask, j, taps_ptr, T, rate, row_valid, sat, svk, svf, LEFT, TAPS, HAS_SPAN, False)
    else:
        acc = down_sums(a_tile, mask, j, taps_ptr, T, rate, row_valid, sat, svk, svf, LEFT, TAPS, HAS_SPAN, True)
    tl.store(y_ptr + b * syb + c[None, :] * syc + j[:, None] * syt, acc.to(y_ptr.dtype.element_ty), mask=mask)
