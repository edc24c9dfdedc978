"""GPU experiment: a fused resblock conv as one long product per tile (taps side by side along K, "im2col" in
registers) against lrelu_conv's per-tap products, per gsv_v4 fused layer.

    PYTHONPATH=. python3 benchmarks/im2col_conv.py [fp16|bf16] [C:SAMPLES_PER_FRAME ...] [--device cpu]

lrelu_conv multiplies [BLOCK_M, C] rows by [C, C] weights once per tap: at 16-64 channels K = C is one or a few
tensor-core steps per product, and each tap's rows change layout on their way into the product. Here the K axis is
tap-major (j = tap C + c, PackedConv's weight order flattened), chunks of BLOCK_K taps-and-channels per product, so
a k=11 conv at 16 channels is 3 products of K=64 instead of 11 of K=16. The kernel lives here until it wins.

--device cpu runs a tiny shape through Triton's interpreter (a check that it computes the conv, not a measurement).
"""

import sys

import kernel_timing

ARGS, DEVICE = kernel_timing.device_args(sys.argv[1:])  # before triton is imported

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from batchvoc.engines.conv_kernels import _finish, _leaky  # noqa: E402
from batchvoc.engines.fused_resblock import lrelu_conv  # noqa: E402
from batchvoc.engines.triton_runtime import channels_last_empty, span_launch_args  # noqa: E402


@triton.jit
def _chunk(acc, x_rows, w_ptr, t, n, k0, T, dilation, padding, slope, sxt, C_IN: tl.constexpr,
           C_OUT: tl.constexpr, K: tl.constexpr, BLOCK_K: tl.constexpr, ACTIVATE_INPUT: tl.constexpr,
           DOT_PRECISION: tl.constexpr):  # fmt: skip
    """acc + the [BLOCK_M, BLOCK_K] rows of taps-and-channels j = k0 .. k0 + BLOCK_K @ weights [BLOCK_K, BLOCK_N]."""
    j = k0 + tl.arange(0, BLOCK_K)
    s = t[:, None] + ((j // C_IN) * dilation - padding)[None, :]
    a = tl.load(x_rows + s * sxt + (j % C_IN)[None, :], mask=(s >= 0) & (s < T) & (j < K)[None, :], other=0.0)
    if ACTIVATE_INPUT:
        a = _leaky(a, slope)
    w = tl.load(w_ptr + j[:, None] * C_OUT + n[None, :], mask=(j < K)[:, None] & (n < C_OUT)[None, :], other=0.0)
    return tl.dot(a, w, acc, input_precision=DOT_PRECISION)


@triton.jit
def im2col_conv(x_ptr, w_ptr, bias_ptr, res_ptr, out_ptr, act_ptr, valid_ptr, T, rate, dilation, padding, slope,
                sxb, sxt, srb, src, srt, sob, soc, sot, svb, svk, svf,
                C_IN: tl.constexpr, C_OUT: tl.constexpr, KSIZE: tl.constexpr, HAS_RES: tl.constexpr,
                HAS_SPAN: tl.constexpr, ACTIVATE_INPUT: tl.constexpr, ACTIVATE_OUTPUT: tl.constexpr,
                DOT_PRECISION: tl.constexpr, BLOCK_M: tl.constexpr,
                BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, STAGES: tl.constexpr):  # fmt: skip
    """lrelu_conv's tile with its taps side by side along K (channels-last x: channel stride 1)."""
    K: tl.constexpr = KSIZE * C_IN
    b = tl.program_id(2).to(tl.int64)
    t = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    x_rows = x_ptr + b * sxb
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    if STAGES > 0:
        for k0 in tl.range(0, K, BLOCK_K, num_stages=STAGES):
            acc = _chunk(acc, x_rows, w_ptr, t, n, k0, T, dilation, padding, slope, sxt, C_IN, C_OUT, K, BLOCK_K,
                         ACTIVATE_INPUT, DOT_PRECISION)  # fmt: skip
    else:
        for k0 in tl.static_range(0, K, BLOCK_K):
            acc = _chunk(acc, x_rows, w_ptr, t, n, k0, T, dilation, padding, slope, sxt, C_IN, C_OUT, K, BLOCK_K,
                         ACTIVATE_INPUT, DOT_PRECISION)  # fmt: skip
    _finish(acc, b, t, n, T, rate, slope, slope, 1.0, bias_ptr, res_ptr, out_ptr, out_ptr, act_ptr, valid_ptr, srb,
            src, srt, sob, soc, sot, svb, svk, svf, C_OUT, HAS_RES, False, False, HAS_SPAN, ACTIVATE_OUTPUT,
            False)  # fmt: skip


def im2col(x, weight, bias, residual, valid, rate, dilation, padding, slope, activate_input, config):
    """out [B, C_out, T] (channels-last) = lrelu_conv(...) from one launch of im2col_conv; weight [k, C_in, C_out]."""
    rows, c_in, length = x.shape
    ksize, _, c_out = weight.shape
    out = channels_last_empty(rows, c_out, length, x)
    valid, vs, has_span = span_launch_args(valid, x)
    grid = (triton.cdiv(length, config["BLOCK_M"]), triton.cdiv(c_out, config["BLOCK_N"]), rows)
    im2col_conv[grid](
        x, weight, bias, residual, out, out, valid, length, rate, dilation, padding, slope, x.stride(0), x.stride(2),
        *residual.stride(), *out.stride(), *vs, C_IN=c_in, C_OUT=c_out, KSIZE=ksize, HAS_RES=True,
        HAS_SPAN=has_span, ACTIVATE_INPUT=activate_input, ACTIVATE_OUTPUT=False,
        DOT_PRECISION="ieee" if x.dtype == torch.float32 else "tf32", **config,
    )  # fmt: skip
    return out


DTYPE = {"fp16": torch.float16, "bf16": torch.bfloat16}[ARGS[0] if ARGS else "fp16"]
if DEVICE == "cpu":
    DTYPE = torch.float32
B, L = (16, 1024) if DEVICE == "cuda" else (2, 6)
STAGES = [tuple(map(int, a.split(":"))) for a in ARGS[1:]] or [(16, 480), (32, 240), (64, 120)]
LAYERS = [(7, 1, True), (11, 1, True), (11, 5, True), (11, 1, False), (3, 1, True)]


def candidates(c: int, k: int):
    """Tiles of BLOCK_M x BLOCK_K (chunks no wider than twice the taps-and-channels), unrolled or pipelined."""
    if DEVICE == "cpu":
        yield dict(BLOCK_M=16, BLOCK_N=c, BLOCK_K=32, num_warps=4, STAGES=0)
        yield dict(BLOCK_M=16, BLOCK_N=c, BLOCK_K=64, num_warps=4, STAGES=2)
        return
    for bm, warps in ((64, 4), (128, 8)):
        for bk in (32, 64, 128):
            if bk // 2 >= k * c:
                continue
            for stages in (0, 2):
                yield dict(BLOCK_M=bm, BLOCK_N=c, BLOCK_K=bk, num_warps=warps, STAGES=stages)


def bench(fn) -> float:
    return kernel_timing.bench(fn, DEVICE)


def measure(c: int, rate: int, k: int, d: int, act: bool) -> tuple:
    """(C, k, d, act, lrelu_conv ms, best im2col ms, its error relative to lrelu_conv's output, its config)."""
    t, pad = L * rate, (k - 1) * d // 2
    x = torch.randn(B, t, c, device=DEVICE, dtype=DTYPE).transpose(1, 2)
    res = torch.randn(B, t, c, device=DEVICE, dtype=DTYPE).transpose(1, 2)
    w = (torch.randn(k, c, c, device=DEVICE) / (c * k) ** 0.5).to(DTYPE)
    bias = torch.randn(c, device=DEVICE, dtype=DTYPE)
    valid = torch.tensor([[0, L - 1]] * B, device=DEVICE).unsqueeze(-1).expand(-1, -1, L).contiguous()
    ref = lrelu_conv(x, w, bias, res, valid, rate, d, pad, 0.1, act).float()
    scale = ref.abs().max().item()
    best = None
    for cfg in candidates(c, k):
        try:
            err = (im2col(x, w, bias, res, valid, rate, d, pad, 0.1, act, cfg).float() - ref).abs().max().item()
            ms = bench(lambda cfg=cfg: im2col(x, w, bias, res, valid, rate, d, pad, 0.1, act, cfg))
        except Exception as exc:  # noqa: BLE001 - a config that does not compile (registers, shared memory)
            print(f"C={c} k={k} {cfg}: {type(exc).__name__}", flush=True)
            continue
        print(f"   C={c} k={k} d={d} act={act:d}: {ms:.3f} ms err {err / scale:.1e} {cfg}", flush=True)
        if best is None or ms < best[0]:
            best = (ms, err / scale, cfg)
    base = bench(lambda: lrelu_conv(x, w, bias, res, valid, rate, d, pad, 0.1, act))
    print(f"C={c:>3} k={k:>2} d={d} act={act:d}: lrelu_conv {base:.3f} | im2col {best[0]:.3f} "
          f"({base / best[0]:.2f}x, err {best[1]:.1e}) {best[2]}", flush=True)  # fmt: skip
    return (c, k, d, act, base, *best)


rows = [measure(c, rate, k, d, act) for c, rate in STAGES for k, d, act in LAYERS]
print(f"\n{DTYPE} B={B} on {DEVICE} (ms; lrelu_conv with its default tile)\n")
print("| C | k | d | act | lrelu_conv | im2col | speed-up | err | best config |")
print("|---|---|---|---|---|---|---|---|---|")
for c, k, d, act, base, ms, err, cfg in rows:
    print(f"| {c} | {k} | {d} | {act:d} | {base:.3f} | {ms:.3f} | {base / ms:.2f}x | {err:.1e} | {cfg} |")
