"""The Triton kernels behind engines/fused_resblock.py (its docstring says what they compute), and `conv_to_one`, the
convolution to one output channel behind engines/post_conv.py.

The resblock convolutions: two ways to feed the per-tap matrix products, one epilogue:
- `lrelu_conv`: pointer loads of each tap's [BLOCK_M, C] rows (neighbouring taps re-read them from L1), taps
  unrolled;
- `lrelu_conv_tma`: each tap's rows come as one tensor-memory-access block copy (Hopper's copy engine), the tap
  loop software-pipelined STAGES deep, so the next taps' rows are in flight while this tap's product runs; rows
  outside [0, T) arrive as zeros (the descriptor's bounds), which is the convolution's zero padding. Its descriptor
  is made on the host; `lrelu_conv_tma_device` makes it on the device, which a compiled graph can launch.

The leaky ReLU's slopes and the output scale are compile-time constants (one value per model layer): as run-time
arguments, a traced launch (Inductor, AOTInductor) typed them fp64 where an eager one types them fp32, and compiled
a different kernel of the same source (more registers; H200 session 33).

Imported only where they run (a CUDA GPU, or Triton's interpreter), so batchvoc imports without triton.
"""

import triton
import triton.language as tl

from batchvoc.engines.span_kernels import utterance_bounds


@triton.jit
def _leaky(a, slope):
    """leaky ReLU, rounded back to a's dtype as the reference rounds it, in fp32 whatever slope's type."""
    af = a.to(tl.float32)
    return tl.where(af > 0, af, af * tl.cast(slope, tl.float32)).to(a.dtype)


@triton.jit
def _finish(acc, b, t, n, T, rate, slope, out_slope, scale, bias_ptr, res_ptr, extra_ptr, out_ptr, act_ptr, valid_ptr,
            srb, src, srt, sob, soc, sot, svb, svk, svf, C_OUT: tl.constexpr, HAS_RES: tl.constexpr,
            RES_ACTIVATED: tl.constexpr, HAS_EXTRA: tl.constexpr, HAS_SPAN: tl.constexpr,
            ACTIVATE_OUTPUT: tl.constexpr, SPLIT_OUT: tl.constexpr):  # fmt: skip
    """((acc [BLOCK_M, BLOCK_N] + bias (+ residual) (+ extra)) * scale) (leaky ReLU'd at out_slope), zeroed outside
    the utterances, stored to out. RES_ACTIVATED: the residual's rows hold its leaky ReLU at `slope`, inverted here
    (v / slope where negative). extra (out's strides) is one more addend (a stage's running sum of block outputs).
    act is a second output (out's strides): SPLIT_OUT stores the output channels from C_OUT // 2 up there (channel
    n - C_OUT // 2) instead of to out, so two convs run side by side write their outputs compact
    (engines/first_convs.py)."""
    acc += tl.load(bias_ptr + n, mask=n < C_OUT, other=0.0).to(tl.float32)[None, :]
    mask = (t < T)[:, None] & (n < C_OUT)[None, :]
    if HAS_RES:
        r = tl.load(res_ptr + b * srb + n[None, :] * src + t[:, None] * srt, mask=mask, other=0.0).to(tl.float32)
        if RES_ACTIVATED:
            r = tl.where(r > 0, r, r / tl.cast(slope, tl.float32))
        acc += r
    if HAS_EXTRA:
        acc += tl.load(extra_ptr + b * sob + n[None, :] * soc + t[:, None] * sot, mask=mask, other=0.0).to(tl.float32)
    acc = acc * tl.cast(scale, tl.float32)  # exact where scale is 1
    if ACTIVATE_OUTPUT:
        acc = tl.where(acc > 0, acc, acc * tl.cast(out_slope, tl.float32))
    if HAS_SPAN:  # Span.zero on the output: every reader of it wants samples outside their utterance zeroed
        lo, hi = utterance_bounds(tl.minimum(t, T - 1), valid_ptr + b * svb, svk, svf, rate)
        acc = tl.where(((t >= lo) & (t < hi))[:, None], acc, 0.0)
    y = acc.to(out_ptr.dtype.element_ty)
    if SPLIT_OUT:
        upper = (n >= C_OUT // 2)[None, :]
        m = tl.where(upper, n[None, :] - C_OUT // 2, n[None, :])
        tl.store(out_ptr + b * sob + m * soc + t[:, None] * sot, y, mask=mask & ~upper)
        tl.store(act_ptr + b * sob + m * soc + t[:, None] * sot, y, mask=mask & upper)
    else:
        tl.store(out_ptr + b * sob + n[None, :] * soc + t[:, None] * sot, y, mask=mask)


@triton.jit
def lrelu_conv(x_ptr, w_ptr, bias_ptr, res_ptr, extra_ptr, out_ptr, act_ptr, valid_ptr, T, rate, dilation, padding,
               slope: tl.constexpr, out_slope: tl.constexpr, scale: tl.constexpr, sxb, sxc, sxt, srb, src, srt, sob,
               soc, sot, svb, svk, svf, C_IN: tl.constexpr,
               C_OUT: tl.constexpr, KSIZE: tl.constexpr, HAS_RES: tl.constexpr, RES_ACTIVATED: tl.constexpr,
               HAS_EXTRA: tl.constexpr, HAS_SPAN: tl.constexpr, ACTIVATE_INPUT: tl.constexpr,
               ACTIVATE_OUTPUT: tl.constexpr, SPLIT_OUT: tl.constexpr, DOT_PRECISION: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, STAGES: tl.constexpr):  # fmt: skip
    """One [BLOCK_M time steps, BLOCK_N output channels] tile of one batch row: per tap, one matrix product of the
    [BLOCK_M, C_IN] input rows that tap reads (leaky ReLU applied as they are loaded) with the tap's [C_IN, BLOCK_N]
    weights. BLOCK_C (a power of two >= C_IN) spans all input channels, so with channels-last x (sxc == 1) every
    row is one contiguous, vectorised load; neighbouring taps re-read the same rows from L1. STAGES 0 unrolls the
    taps; STAGES > 0 software-pipelines the tap loop that deep (asynchronous copies into shared memory: what a
    traced launch runs for a block-copy tile, having no block-copy descriptor)."""
    b = tl.program_id(2).to(tl.int64)
    t = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    c = tl.arange(0, BLOCK_C)
    x_rows = x_ptr + b * sxb + c[None, :] * sxc
    w_cols = w_ptr + c[:, None] * C_OUT + n[None, :]
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    if STAGES > 0:
        for tap in tl.range(0, KSIZE, num_stages=STAGES):
            acc = _tap_product(acc, x_rows, w_cols, t, n, c, tap, T, dilation, padding, slope, sxt, C_IN, C_OUT,
                               ACTIVATE_INPUT, DOT_PRECISION)  # fmt: skip
    else:
        for tap in tl.static_range(KSIZE):
            acc = _tap_product(acc, x_rows, w_cols, t, n, c, tap, T, dilation, padding, slope, sxt, C_IN, C_OUT,
                               ACTIVATE_INPUT, DOT_PRECISION)  # fmt: skip
    _finish(acc, b, t, n, T, rate, slope, out_slope, scale, bias_ptr, res_ptr, extra_ptr, out_ptr, act_ptr, valid_ptr,
            srb, src, srt, sob, soc, sot, svb, svk, svf, C_OUT, HAS_RES, RES_ACTIVATED, HAS_EXTRA, HAS_SPAN,
            ACTIVATE_OUTPUT, SPLIT_OUT)  # fmt: skip


@triton.jit
def _tap_product(acc, x_rows, w_cols, t, n, c, tap, T, dilation, padding, slope, sxt, C_IN: tl.constexpr,
                 C_OUT: tl.constexpr, ACTIVATE_INPUT: tl.constexpr, DOT_PRECISION: tl.constexpr):  # fmt: skip
    """acc + (one tap's input rows, pointer-loaded, zero outside [0, T)) @ (the tap's weights)."""
    s = t + (tap * dilation - padding)  # the input sample each step reads through this tap
    a = tl.load(x_rows + s[:, None] * sxt, mask=((s >= 0) & (s < T))[:, None] & (c < C_IN)[None, :], other=0.0)
    if ACTIVATE_INPUT:
        a = _leaky(a, slope)
    w = tl.load(w_cols + tap * C_IN * C_OUT, mask=(c < C_IN)[:, None] & (n < C_OUT)[None, :], other=0.0)
    return tl.dot(a, w, acc, input_precision=DOT_PRECISION)


@triton.jit
def lrelu_conv_tma(x_desc, w_ptr, bias_ptr, res_ptr, extra_ptr, out_ptr, act_ptr, valid_ptr, T, rate, dilation, padding,
                   slope: tl.constexpr, out_slope: tl.constexpr, scale: tl.constexpr, srb, src, srt, sob, soc, sot,
                   svb, svk, svf, C_IN: tl.constexpr,
                   C_OUT: tl.constexpr, KSIZE: tl.constexpr, HAS_RES: tl.constexpr, RES_ACTIVATED: tl.constexpr,
                   HAS_EXTRA: tl.constexpr, HAS_SPAN: tl.constexpr, ACTIVATE_INPUT: tl.constexpr,
                   ACTIVATE_OUTPUT: tl.constexpr, SPLIT_OUT: tl.constexpr, DOT_PRECISION: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
                   STAGES: tl.constexpr, BOX_C: tl.constexpr):  # fmt: skip
    """`lrelu_conv` with x as a descriptor of channels-last [B, T, C_IN], block [1, BLOCK_M, BOX_C]: each tap's
    rows are BLOCK_C / BOX_C block copies (zeros outside [0, T) and past C_IN), each feeding its own product over its
    channels, the tap loop pipelined STAGES deep. Without ACTIVATE_INPUT the rows go from shared memory straight into
    the product."""
    _conv_of_block_copies(x_desc, w_ptr, bias_ptr, res_ptr, extra_ptr, out_ptr, act_ptr, valid_ptr, T, rate, dilation,
                          padding, slope, out_slope, scale, srb, src, srt, sob, soc, sot, svb, svk, svf, C_IN, C_OUT,
                          KSIZE, HAS_RES, RES_ACTIVATED, HAS_EXTRA, HAS_SPAN, ACTIVATE_INPUT, ACTIVATE_OUTPUT,
                          SPLIT_OUT, DOT_PRECISION, BLOCK_M, BLOCK_N, BLOCK_C, STAGES, BOX_C)  # fmt: skip


@triton.jit
def lrelu_conv_tma_device(x_ptr, w_ptr, bias_ptr, res_ptr, extra_ptr, out_ptr, act_ptr, valid_ptr, B, T, rate, dilation,
                          padding, slope: tl.constexpr, out_slope: tl.constexpr, scale: tl.constexpr, sxb, sxt, srb,
                          src, srt, sob, soc, sot, svb, svk, svf,
                          C_IN: tl.constexpr, C_OUT: tl.constexpr, KSIZE: tl.constexpr, HAS_RES: tl.constexpr,
                          RES_ACTIVATED: tl.constexpr, HAS_EXTRA: tl.constexpr, HAS_SPAN: tl.constexpr,
                          ACTIVATE_INPUT: tl.constexpr, ACTIVATE_OUTPUT: tl.constexpr, SPLIT_OUT: tl.constexpr,
                          DOT_PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                          BLOCK_C: tl.constexpr, STAGES: tl.constexpr, BOX_C: tl.constexpr):  # fmt: skip
    """`lrelu_conv_tma` with the descriptor of channels-last x [B, T, C_IN] (x_ptr, strides sxb, sxt, 1) built by each
    program on the device, in the global scratch memory its launcher provides (a compiled graph's launcher does;
    an eager launch needs triton.set_allocator): what a compiled graph can launch, a host descriptor it cannot."""
    x_desc = tl.make_tensor_descriptor(x_ptr, shape=[B, T, C_IN], strides=[sxb, sxt, 1],
                                       block_shape=[1, BLOCK_M, BOX_C])  # fmt: skip
    _conv_of_block_copies(x_desc, w_ptr, bias_ptr, res_ptr, extra_ptr, out_ptr, act_ptr, valid_ptr, T, rate, dilation,
                          padding, slope, out_slope, scale, srb, src, srt, sob, soc, sot, svb, svk, svf, C_IN, C_OUT,
                          KSIZE, HAS_RES, RES_ACTIVATED, HAS_EXTRA, HAS_SPAN, ACTIVATE_INPUT, ACTIVATE_OUTPUT,
                          SPLIT_OUT, DOT_PRECISION, BLOCK_M, BLOCK_N, BLOCK_C, STAGES, BOX_C)  # fmt: skip


@triton.jit
def _conv_of_block_copies(x_desc, w_ptr, bias_ptr, res_ptr, extra_ptr, out_ptr, act_ptr, valid_ptr, T, rate, dilation,
                          padding, slope, out_slope, scale, srb, src, srt, sob, soc, sot, svb, svk, svf,
                          C_IN: tl.constexpr, C_OUT: tl.constexpr, KSIZE: tl.constexpr, HAS_RES: tl.constexpr,
                          RES_ACTIVATED: tl.constexpr, HAS_EXTRA: tl.constexpr, HAS_SPAN: tl.constexpr,
                          ACTIVATE_INPUT: tl.constexpr, ACTIVATE_OUTPUT: tl.constexpr, SPLIT_OUT: tl.constexpr,
                          DOT_PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                          BLOCK_C: tl.constexpr, STAGES: tl.constexpr, BOX_C: tl.constexpr):  # fmt: skip
    """The block-copy kernels' tile: x_desc describes channels-last x [B, T, C_IN] in blocks [1, BLOCK_M, BOX_C]
    (BOX_C divides BLOCK_C)."""
    b = tl.program_id(2)
    t0 = tl.program_id(0) * BLOCK_M
    t = t0 + tl.arange(0, BLOCK_M)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for tap in tl.range(0, KSIZE, num_stages=STAGES):
        for box in tl.static_range(BLOCK_C // BOX_C):
            a = x_desc.load([b, t0 + tap * dilation - padding, box * BOX_C]).reshape(BLOCK_M, BOX_C)
            if ACTIVATE_INPUT:
                a = _leaky(a, slope)
            c = box * BOX_C + tl.arange(0, BOX_C)
            w_ok = (c < C_IN)[:, None] & (n < C_OUT)[None, :]
            w = tl.load(w_ptr + tap * C_IN * C_OUT + c[:, None] * C_OUT + n[None, :], mask=w_ok, other=0.0)
            acc = tl.dot(a, w, acc, input_precision=DOT_PRECISION)
    _finish(acc, b.to(tl.int64), t, n, T, rate, slope, out_slope, scale, bias_ptr, res_ptr, extra_ptr, out_ptr, act_ptr,
            valid_ptr, srb, src, srt, sob, soc, sot, svb, svk, svf, C_OUT, HAS_RES, RES_ACTIVATED, HAS_EXTRA, HAS_SPAN,
            ACTIVATE_OUTPUT, SPLIT_OUT)  # fmt: skip


@triton.jit
def conv_to_one(x_ptr, w_ptr, bias_ptr, out_ptr, T, T_OUT, dilation, padding, sxb, sxc, sxt, sob, sot,
                C_IN: tl.constexpr, KSIZE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):  # fmt: skip
    """A stride-1 convolution to one output channel (engines/post_conv.py), BLOCK_M output steps of one batch row:
    out[b, 0, t] = bias + sum_{k, c} w[k, c] * x[b, c, t + k*dilation - padding] for t < T_OUT, x [B, C_IN, T] zero
    outside [0, T), w [KSIZE, C_IN] contiguous, bias [1]. Per tap the [BLOCK_M, BLOCK_C] rows it reads (BLOCK_C a
    power of two >= C_IN) times the tap's weights, accumulated elementwise in fp32 and summed over channels once at
    the end: with one output channel a matrix product would waste all but one column of its tile. Channels-last x
    (sxc == 1) makes every row one contiguous load; neighbouring taps re-read the same rows from L1."""
    b = tl.program_id(1).to(tl.int64)
    t = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    c = tl.arange(0, BLOCK_C)
    x_rows = x_ptr + b * sxb + c[None, :] * sxc
    acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
    for tap in tl.static_range(KSIZE):
        s = t + (tap * dilation - padding)  # the input sample each step reads through this tap
        a = tl.load(x_rows + s[:, None] * sxt, mask=((s >= 0) & (s < T))[:, None] & (c < C_IN)[None, :], other=0.0)
        w = tl.load(w_ptr + tap * C_IN + c, mask=c < C_IN, other=0.0)
        acc += a.to(tl.float32) * w.to(tl.float32)[None, :]
    y = tl.sum(acc, axis=1) + tl.load(bias_ptr).to(tl.float32)
    tl.store(out_ptr + b * sob + t * sot, y.to(out_ptr.dtype.element_ty), mask=t < T_OUT)
