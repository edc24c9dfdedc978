"""GPU: time engines/superrow.py's superrow_conv per gsv_v4 fused layer over tile configs, against lrelu_conv's pick.

    PYTHONPATH=. python3 benchmarks/superrow_tiles.py [fp16|bf16] [best.json] [C:SAMPLES_PER_FRAME ...] [--device cpu]
        [--quick]

Stages default to gsv_v4's fused ones (64:120 32:240 16:480); name one per run to keep it under ~10 minutes. For each
stage (channels C, T = 1024 * samples per frame, batch 16), each (k, d) in KERNELS reaching at most MAX_REACH
super-rows each side, and the input activated or not (ACT 1 / 0): the fused step (leaky ReLU + conv + bias +
residual + span) over super-rows per tile config, against lrelu_conv with its own pick (fused_resblock.tiles()).
best.json holds the fastest super-row config per layer, {"C,KSIZE,DILATION,ACT": {BLOCK_M: .., ...}}.

--quick sweeps BLOCK_M 64 / 128 and STAGES 0 / 2 only (the H200's picks at 16 channels: half the configs).
--device cpu runs a tiny shape through Triton's interpreter (two configs, wall-clock times: a check that the script
runs, not a measurement).
"""

import json
import sys
from pathlib import Path

import kernel_timing

ARGS, DEVICE = kernel_timing.device_args(sys.argv[1:])  # before triton is imported
QUICK = "--quick" in ARGS
ARGS = [a for a in ARGS if a != "--quick"]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from batchvoc.engines.fused_resblock import lrelu_conv  # noqa: E402
from batchvoc.engines.superrow import (  # noqa: E402
    SUPERROW_TILE_KEYS,
    superrow_conv,
    superrow_reach,
    superrow_samples,
    superrow_tiles,
    superrow_weights,
)

DTYPE = {"fp16": torch.float16, "bf16": torch.bfloat16}[ARGS[0] if ARGS else "fp16"]
if DEVICE == "cpu":
    DTYPE = torch.float32  # the interpreter's CPU products
B, L = (16, 1024) if DEVICE == "cuda" else (2, 4)
STAGES = [tuple(map(int, a.split(":"))) for a in ARGS[2:]] or [(64, 120), (32, 240), (16, 480)]
KERNELS = [(3, 1), (7, 1), (11, 1), (7, 3), (11, 5)]
MAX_REACH = 4  # wider reaches cost (2M + 1) S / k times the FLOPs: no chance against lrelu_conv


def candidates(width: int, act: bool):
    """The default tile, then BLOCK_M x BLOCK_N x pipeline depth (STAGES 0: blocks unrolled), 4 warps, and 8 too
    for tiles of 8,192 outputs or more."""
    yield superrow_tiles(width, act)
    if DEVICE == "cpu":
        yield dict(BLOCK_M=16, BLOCK_N=64, num_warps=4, num_stages=1, STAGES=2)
        return
    for bm in (64, 128) if QUICK else (32, 64, 128):
        for bn in (64, 128):
            for warps in (4, 8) if bm * bn >= 8192 else (4,):
                for stages in (0, 2) if QUICK else (0, 2, 3):
                    yield dict(BLOCK_M=bm, BLOCK_N=min(bn, width), num_warps=warps, num_stages=1, STAGES=stages)


def bench(fn) -> float:
    return kernel_timing.bench(fn, DEVICE)


def measure(c, rate, k, d, act):
    t, samples, pad = L * rate, superrow_samples(c), (k - 1) * d // 2
    x = torch.randn(B, t, c, device=DEVICE, dtype=DTYPE).transpose(1, 2)
    res = torch.randn(B, t, c, device=DEVICE, dtype=DTYPE).transpose(1, 2)
    w = (torch.randn(k, c, c, device=DEVICE) / (c * k) ** 0.5).to(DTYPE)
    blocks = superrow_weights(w, d, pad, samples)
    bias = torch.zeros(c, device=DEVICE, dtype=DTYPE)
    valid = torch.tensor([[0, L]] * B, device=DEVICE).unsqueeze(-1).expand(-1, -1, L).contiguous()

    def run(cfg):
        tile = [int(cfg.get(key, 0)) for key in SUPERROW_TILE_KEYS]
        return superrow_conv(x, blocks, bias, res, valid, rate, samples, 0.1, act, tile=tile)

    inp = F.leaky_relu(x.float(), 0.1) if act else x.float()
    ref = F.conv1d(inp, w.float().permute(2, 1, 0), None, 1, pad, d) + res.float()
    timings = []
    configs = list(dict.fromkeys(tuple(cfg.items()) for cfg in candidates(samples * c, act)))
    for cfg in map(dict, configs):
        try:
            err = (run(cfg).float() - ref).abs().max().item() / ref.abs().max().item()
            timings.append((bench(lambda cfg=cfg: run(cfg)), err, cfg))
        except Exception as exc:  # noqa: BLE001 - a config that does not compile (shared memory) is skipped
            print(f"C={c} k={k} d={d} {cfg}: {type(exc).__name__}", flush=True)
    timings.sort(key=lambda r: r[0])
    pick_ms = bench(lambda: lrelu_conv(x, w, bias, res, valid, rate, d, pad, 0.1, act))
    best_ms, err, best = timings[0]
    for ms, e, cfg in timings:
        print(f"   C={c} k={k} d={d} act={act:d}: {ms:.3f} ms err {e:.1e} {cfg}")
    print(f"C={c:>3} k={k:>2} d={d} act={act:d} M={superrow_reach(k, d, samples)}: lrelu_conv {pick_ms:.3f} | "
          f"super-rows best {best_ms:.3f} ({pick_ms / best_ms:.2f}x, err {err:.1e}) {best}", flush=True)  # fmt: skip
    return c, k, d, act, pick_ms, best_ms, err, best


layers = [(c, rate, k, d) for c, rate in STAGES for k, d in KERNELS
          if superrow_reach(k, d, superrow_samples(c)) <= MAX_REACH]  # fmt: skip
rows = [measure(c, rate, k, d, act) for c, rate, k, d in layers for act in (True, False)]
print(f"\n{DTYPE} B={B} on {DEVICE} (ms; lrelu_conv with its default tile)\n")
print("| C | k | d | act | M | lrelu_conv | super-rows | speed-up | err | best config |")
print("|---|---|---|---|---|---|---|---|---|---|")
for c, k, d, act, pick, best, err, cfg in rows:
    reach = superrow_reach(k, d, superrow_samples(c))
    print(f"| {c} | {k} | {d} | {act:d} | {reach} | {pick:.3f} | {best:.3f} | {pick / best:.2f}x | {err:.1e} | {cfg} |")
if len(ARGS) > 1:  # the fastest super-row config per layer
    Path(ARGS[1]).write_text(json.dumps({f"{c},{k},{d},{act:d}": cfg for c, k, d, act, *_, cfg in rows}, indent=1))
