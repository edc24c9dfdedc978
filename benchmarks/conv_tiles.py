"""GPU: time engines/fused_resblock.py's lrelu_conv per gsv_v4 stage shape over tile configs, against cuDNN.

    PYTHONPATH=. python3 benchmarks/conv_tiles.py [fp16|bf16] [best.json] [C:SAMPLES_PER_FRAME ...]

best.json (the fastest config per layer) is an engine option as it is: engine.options.tile_table=best.json.
Stages default to gsv_v4's fused ones (64:120 32:240 16:480); its wider ones are 128:60 and 256:10.

For each stage (channels C, samples per row T = 1024 * samples per frame), batch 16, and each resblock kernel size
(k=3 d=1, k=7 d=3, k=11 d=5): the fused step (leaky ReLU + conv + bias + residual + span) per tile config, against
cuDNN's channels-last conv alone and cuDNN with the unfused elementwise work around it (leaky ReLU before, residual
add after, each one pass over memory as Inductor runs them). GB/s counts the fused step's minimum traffic.
"""

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench

from batchvoc.engines.fused_resblock import lrelu_conv, tile_list, tiles

DTYPE = {"fp16": torch.float16, "bf16": torch.bfloat16}[sys.argv[1] if len(sys.argv) > 1 else "fp16"]
B, L = 16, 1024
STAGES = [tuple(map(int, a.split(":"))) for a in sys.argv[3:]] or [(64, 120), (32, 240), (16, 480)]
KERNELS = [(3, 1), (7, 3), (11, 5)]


def candidates(c, k, act):
    """The pick, then pointer-load and block-copy (TMA) configs: tile heights and pipeline depths."""
    yield tiles(c, c, k, act)
    if c > 64:  # wide layers: output tiles of all channels (activation once per row), 8 warps, shallower pipes
        for bm in (64, 128):
            for bn in (64, 128):
                for warps in (4, 8):
                    for stages in (2, 3):
                        yield dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_C=c, num_warps=warps, num_stages=1, STAGES=stages)
        return
    for bm in (64, 128, 256):
        base = dict(BLOCK_M=bm, BLOCK_N=min(c, 64), BLOCK_C=max(16, c), num_warps=4, num_stages=1)
        yield base
        for stages in (2, 3):
            yield dict(base, STAGES=stages)


def measure(c, rate, k, d, act):
    t = L * rate
    x = torch.randn(B, t, c, device="cuda", dtype=DTYPE).transpose(1, 2)
    res = torch.randn(B, t, c, device="cuda", dtype=DTYPE).transpose(1, 2)
    w = (torch.randn(k, c, c, device="cuda") / (c * k) ** 0.5).to(DTYPE)
    bias = torch.zeros(c, device="cuda", dtype=DTYPE)
    valid = torch.tensor([[0, L]] * B, device="cuda").unsqueeze(-1).expand(-1, -1, L).contiguous()
    pad = (k - 1) * d // 2
    nbytes = 3 * B * t * c * 2

    def run(cfg):
        return lrelu_conv(x, w, bias, res, valid, rate, d, pad, 0.1, act, tile=tile_list(cfg))

    inp = F.leaky_relu(x.float(), 0.1) if act else x.float()
    ref = F.conv1d(inp, w.float().permute(2, 1, 0), None, 1, pad, d) + res.float()
    timings = []
    configs = list(dict.fromkeys(map(lambda cfg: tuple(cfg.items()), candidates(c, k, act))))
    for cfg in map(dict, configs):
        try:
            err = (run(cfg).float() - ref).abs().max().item() / ref.abs().max().item()
            timings.append((do_bench(lambda cfg=cfg: run(cfg), warmup=5, rep=30), err, cfg))
        except Exception as exc:  # noqa: BLE001 - a config that does not compile (shared memory) is skipped
            print(f"C={c} k={k} {cfg}: {type(exc).__name__}", flush=True)
    timings.sort(key=lambda r: r[0])
    w2 = w.permute(2, 1, 0).unsqueeze(2).contiguous(memory_format=torch.channels_last)
    x2, r2 = x.unsqueeze(2), res.unsqueeze(2)
    cudnn = do_bench(lambda: F.conv2d(x2, w2, None, 1, (0, pad), (1, d)), warmup=5, rep=30)
    unfused = do_bench(lambda: F.conv2d(F.leaky_relu(x2, 0.1), w2, bias, 1, (0, pad), (1, d)).add_(r2), warmup=5,
                       rep=30)  # fmt: skip
    pick = tiles(c, c, k, act)
    pick_ms = next((ms for ms, _, cfg in timings if cfg == pick), float("nan"))
    best_ms, err, best = timings[0]
    for ms, _, cfg in timings:
        print(f"   C={c} k={k} act={act}: {ms:.3f} ms {cfg}")
    print(f"C={c:>3} k={k:>2} act={act:d}: cuDNN {cudnn:.3f} unfused {unfused:.3f} | pick {pick_ms:.3f} "
          f"best {best_ms:.3f} ({nbytes / best_ms / 1e6:.0f} GB/s, err {err:.1e}) {best}", flush=True)  # fmt: skip
    return c, k, act, cudnn, unfused, pick_ms, best_ms, best


rows = [measure(c, rate, k, d, act) for c, rate in STAGES for k, d in KERNELS for act in (True, False)]
print(f"\n{DTYPE} B={B} (ms; unfused = leaky ReLU + cuDNN conv + bias + residual add, as separate kernels)")
print(f"{'C':>4} {'k':>3} {'act':>3} {'cuDNN':>7} {'unfused':>7} {'pick':>7} {'best':>7}  best config")
for c, k, act, cd, uf, pk, best, cfg in rows:
    print(f"{c:>4} {k:>3} {act:>3d} {cd:7.3f} {uf:7.3f} {pk:7.3f} {best:7.3f}  {cfg}")
print(triton.__version__)
if len(sys.argv) > 2:  # the fastest config per (channels, kernel size): engine.options.tile_table=<this file>
    Path(sys.argv[2]).write_text(json.dumps({f"{c},{k},{act:d}": cfg for c, k, act, *_, cfg in rows}, indent=1))
