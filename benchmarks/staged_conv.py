"""GPU experiment: gsv_v4's fused resblock convs with every tap read from one staged tile (staged_conv.cu, CUDA C++
through NVRTC) against lrelu_conv (engines/fused_resblock.py), per layer form the model runs.

    PYTHONPATH=. python3 benchmarks/staged_conv.py [fp16|bf16] [--quick]

Per layer: lrelu_conv's time with its default tile, the staged kernel's best block shape, and both outputs'
largest difference from an fp32 reference (F.conv1d of the same rounded inputs), relative to the output's
largest magnitude. The last table sums the layers as one gsv_v4 forward runs them (three stages of three resblocks
with kernel sizes 3, 7, 11, six convs each). The kernel lives here until it wins.
"""

import ctypes
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from kernel_timing import bench, wake_gpu

from batchvoc.engines.fused_resblock import lrelu_conv
from batchvoc.engines.triton_runtime import channels_last_empty

SOURCE = (Path(__file__).parent / "staged_conv.cu").read_text()
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
QUICK = "--quick" in sys.argv
DTYPE = {"fp16": torch.float16, "bf16": torch.bfloat16}[ARGS[0] if ARGS else "fp16"]
B, FRAMES, SLOPE = 16, 1024, 0.1
STAGES = [(64, 120), (32, 240), (16, 480)]  # gsv_v4's fused stages: channels, samples per frame
# (k, d, activate input, residual, activate output, store activated): the forms FusedResBlock.run launched until
# session 24 (it no longer stores an output beside its activation, nor reads an activated residual, which this
# kernel does not take: the residual forms here read it as it is)
FORMS = [(3, 1, 1, 0, 1, 0), (3, 3, 1, 0, 1, 0), (3, 5, 1, 0, 1, 0), (3, 1, 0, 1, 0, 0),
         (7, 1, 0, 0, 1, 0), (7, 3, 0, 0, 1, 0), (7, 5, 0, 0, 1, 0), (7, 1, 0, 1, 0, 0),
         (11, 1, 0, 0, 1, 0), (11, 3, 0, 0, 1, 0), (11, 5, 0, 0, 1, 0), (11, 1, 0, 1, 0, 0)]  # fmt: skip
# (BM, WARPS_M, WARPS_N, NBUF: the ring of staged tiles, NBUF - 1 of them in flight while one computes)
SHAPES = {16: [(256, 4, 1, 2), (256, 4, 1, 3), (256, 4, 1, 4), (128, 4, 1, 4), (512, 8, 1, 3)],
          32: [(256, 4, 1, 2), (256, 4, 1, 3), (128, 4, 1, 4), (256, 8, 1, 3)],
          64: [(128, 4, 2, 2), (128, 4, 2, 3), (128, 4, 1, 3)]}  # fmt: skip
if QUICK:
    SHAPES = {c: s[1:2] for c, s in SHAPES.items()}
_compiled: dict[str, object] = {}
GRIDS: dict[tuple, int] = {}  # blocks per SM each launch ran


def kernel(c: int, k: int, shape: tuple[int, int, int], flags: tuple[int, ...]):
    """The NVRTC-compiled instantiation (cached per name)."""
    bm, wm, wn, nbuf = shape
    act_in, res, act_out, store = flags
    b = lambda v: "true" if v else "false"  # noqa: E731
    name = (f"staged_conv<{c}, {k}, {bm}, {wm}, {wn}, {nbuf}, {b(DTYPE == torch.bfloat16)}, {b(act_in)}, {b(res)}, "
            f"{b(act_out)}, {b(store)}, true>")  # fmt: skip
    if name not in _compiled:
        _compiled[name] = torch.cuda._compile_kernel(SOURCE, name)
    return _compiled[name]


def blocks_per_sm(fn, threads: int, smem: int) -> int:
    """The occupancy API's answer for this kernel, block size and shared memory."""
    libcuda = torch.cuda._utils._get_gpu_runtime_library()
    occupancy = libcuda.cuOccupancyMaxActiveBlocksPerMultiprocessor
    occupancy.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    n = ctypes.c_int()
    occupancy(ctypes.byref(n), fn.func, threads, smem)
    return n.value


def staged(x, w_t, bias, res, valid, rate, k, d, flags, shape):
    """(out, activated or None) from one launch; x [B, C, T] channels-last, w_t [k, C_out, C_in]."""
    rows, c, length = x.shape
    bm, wm, wn, nbuf = shape
    fn = kernel(c, k, shape, flags)
    threads = 32 * wm * wn
    side = nbuf * bm if flags[1] or flags[3] else 0
    smem = (k * c + nbuf * (bm + (k - 1) * d) + side) * (c + 8) * 2
    fn.set_shared_memory_config(smem)
    per_row = -(-length // bm)
    n_tiles = per_row * rows
    fit = blocks_per_sm(fn, threads, smem)
    if fit == 0:
        raise RuntimeError(f"no block fits ({smem} bytes of shared memory)")
    grid = min(n_tiles, torch.cuda.get_device_properties().multi_processor_count * fit)
    GRIDS[c, k, d, shape, flags] = fit
    out = channels_last_empty(rows, c, length, x)
    act = channels_last_empty(rows, c, length, x) if flags[3] else out
    r = res if res is not None else out
    fn(grid=(grid, 1, 1), block=(threads, 1, 1), shared_mem=smem,
       args=[x, w_t, bias, r, out, act, valid, length, d, (k - 1) * d // 2, SLOPE, rate, per_row, n_tiles,
             x.stride(0), x.stride(2), r.stride(0), r.stride(2), out.stride(0), out.stride(2),
             *valid.stride()])  # fmt: skip
    return out, (act if flags[3] else None)


def reference(x, w, bias, res, valid, rate, d, flags):
    """fp32 arithmetic on the same rounded inputs: the engine's eager reference of one conv."""
    act_in, _, act_out, _ = flags
    xf = F.leaky_relu(x.float(), SLOPE).to(x.dtype).float() if act_in else x.float()
    y = F.conv1d(xf, w.float().permute(2, 1, 0), bias.float(), 1, (w.shape[0] - 1) * d // 2, d)
    if res is not None:
        y = y + res.float()
    if act_out:
        y = F.leaky_relu(y, SLOPE)
    t = torch.arange(y.shape[-1], device=y.device)
    lo, hi = valid[:, 0, t // rate] * rate, valid[:, 1, t // rate] * rate
    return torch.where(((t >= lo) & (t < hi))[:, None, :], y, 0.0)


def measure(c: int, rate: int, form: tuple[int, ...]) -> tuple:
    k, d, *flags = form
    act_in, has_res, act_out, store = flags
    length = FRAMES * rate
    x = torch.randn(B, length, c, device="cuda", dtype=DTYPE).transpose(1, 2)
    res = torch.randn(B, length, c, device="cuda", dtype=DTYPE).transpose(1, 2) if has_res else None
    w = (torch.randn(k, c, c, device="cuda") / (c * k) ** 0.5).to(DTYPE)
    w_t = w.permute(0, 2, 1).contiguous()
    bias = torch.randn(c, device="cuda", dtype=DTYPE)
    valid = torch.tensor([[0, FRAMES - 1]] * B, device="cuda").unsqueeze(-1).expand(-1, -1, FRAMES).contiguous()
    ref = reference(x, w, bias, res, valid, rate, d, flags)
    scale = ref.abs().max().item()
    pad = (k - 1) * d // 2
    base_fn = lambda: lrelu_conv(x, w, bias, res, valid, rate, d, pad, SLOPE, bool(act_in), bool(act_out))  # noqa: E731
    base_out = base_fn()
    base_err = (base_out.float() - ref).abs().max().item() / scale
    base_ms = bench(base_fn, "cuda")
    best = None
    for shape in SHAPES[c]:
        try:
            out, act = staged(x, w_t, bias, res, valid, rate, k, d, tuple(flags), shape)
            err = (out.float() - ref).abs().max().item() / scale
            if store:
                act_ref = F.leaky_relu(out.float(), SLOPE).to(DTYPE)
                err = max(err, (act.float() - act_ref.float()).abs().max().item() / scale)
            ms = bench(lambda s=shape: staged(x, w_t, bias, res, valid, rate, k, d, tuple(flags), s), "cuda")
        except Exception as exc:  # noqa: BLE001 - a shape that does not fit (registers, shared memory)
            print(f"   C={c} k={k} d={d} {shape}: {type(exc).__name__}: {exc}", flush=True)
            continue
        per_sm = GRIDS[c, k, d, shape, tuple(flags)]
        print(f"   C={c} k={k} d={d} flags={flags} {shape}: {ms:.3f} ms err {err:.1e} ({per_sm}/SM)", flush=True)
        if best is None or ms < best[0]:
            best = (ms, err, shape)
    best = best or (float("nan"), float("nan"), None)
    print(f"C={c:>2} k={k:>2} d={d} {flags}: lrelu_conv {base_ms:.3f} (err {base_err:.1e}) | staged {best[0]:.3f} "
          f"(err {best[1]:.1e}) {best[2]}", flush=True)  # fmt: skip
    return c, form, base_ms, base_err, *best


def per_forward(rows: list) -> dict[int, tuple[float, float]]:
    """ms per gsv_v4 forward by stage: each kernel size's block runs its forms as FusedResBlock.run did until
    session 24 (groups of dilations 1, 3, 5: c1 at the group's dilation, c2 at 1; the first groups' c1 read the
    stage's shared activation, the others activate their input at k = 3)."""
    times = {(c, form): (base, ms) for c, form, base, _, ms, _, _ in rows}
    sums = {}
    for c, _ in STAGES:
        total = [0.0, 0.0]
        for k in (3, 7, 11):
            for d in (1, 3, 5):
                c1 = (k, d, 1, 0, 1, 0) if k == 3 else (k, d, 0, 0, 1, 0)
                for form in (c1, (k, 1, 0, 1, 0, 0)):
                    base, ms = times.get((c, form), (0.0, 0.0))
                    total[0] += base
                    total[1] += ms
        sums[c] = tuple(total)
    return sums


if __name__ == "__main__":
    wake_gpu()
    for c, rate in STAGES:  # the floor of a layer that reads x and writes out once: a copy
        src = torch.randn(B, FRAMES * rate, c, device="cuda", dtype=DTYPE)
        dst = torch.empty_like(src)
        print(f"C={c}: copy of x {bench(lambda: dst.copy_(src), 'cuda'):.3f} ms", flush=True)  # noqa: B023
    rows = [measure(c, rate, form) for c, rate in STAGES for form in FORMS]
    print(f"\n{DTYPE} B={B} x {FRAMES} frames (ms; lrelu_conv with its default tile; err relative to fp32)\n")
    print(
        "| C | k | d | act in | res | act out | store act | lrelu_conv | staged | speed-up | err (lrelu / staged) "
        "| shape |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c, (k, d, *f), base, berr, ms, err, shape in rows:
        print(f"| {c} | {k} | {d} | {f[0]} | {f[1]} | {f[2]} | {f[3]} | {base:.3f} | {ms:.3f} | {base / ms:.2f}x | "
              f"{berr:.1e} / {err:.1e} | {shape} |")  # fmt: skip
    print("\n| stage channels | lrelu_conv per forward | staged per forward |\n|---|---|---|")
    for c, (base, ms) in per_forward(rows).items():
        print(f"| {c} | {base:.2f} ms | {ms:.2f} ms |")
