"""GPU: time engines/fused_resblock.py's lrelu_conv per gsv_v4 stage shape over tile configs, against cuDNN.

    PYTHONPATH=. python3 bench_results/conv_tiles.py [fp16|bf16]

For each stage (channels C, samples per row T = 1024 * samples per frame), batch 16, a k=7, dilation-3 conv with
residual: the best tile configs (ms, TFLOP/s, GB/s at the minimum traffic), the heuristic's pick, and cuDNN's
channels-last conv alone (no activation, no residual) for scale.
"""

import sys

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench

from batchvoc.engines.fused_resblock import _triton_forward, tiles

DTYPE = {"fp16": torch.float16, "bf16": torch.bfloat16}[sys.argv[1] if len(sys.argv) > 1 else "fp16"]
B, L, K, D = 16, 1024, 7, 3
STAGES = [(64, 120), (32, 240), (16, 480)]


def candidates(c):
    """Tile shapes per channel count (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages); BLOCK_K may span several taps."""
    n = max(16, min(c, 128))
    for bm, bk, warps, stages in [(128, 64, 4, 3), (256, 64, 4, 3), (256, 64, 8, 3), (128, 128, 4, 3),
                                  (256, 128, 8, 3), (64, 64, 4, 3), (128, 32, 4, 3), (256, 32, 4, 4),
                                  (512, 64, 8, 3), (128, 64, 4, 4)]:  # fmt: skip
        yield dict(BLOCK_M=bm, BLOCK_N=n, BLOCK_K=bk, num_warps=warps, num_stages=stages)


def measure_stage(c, rate):
    t = L * rate
    x = torch.randn(B, t, c, device="cuda", dtype=DTYPE).transpose(1, 2)
    res = torch.randn(B, t, c, device="cuda", dtype=DTYPE).transpose(1, 2)
    w = (torch.randn(K, c, c, device="cuda") / (c * K) ** 0.5).to(DTYPE)
    bias = torch.zeros(c, device="cuda", dtype=DTYPE)
    valid = torch.tensor([[0, L]] * B, device="cuda").unsqueeze(-1).expand(-1, -1, L).contiguous()
    pad = (K - 1) * D // 2
    flops = 2 * B * t * c * c * K
    bytes_min = 3 * B * t * c * 2

    def run(cfg):
        return _triton_forward(x, w, bias, res, valid, rate, D, pad, 0.1, cfg)

    ref = F.conv1d(F.leaky_relu(x.float(), 0.1), w.float().permute(2, 1, 0), None, 1, pad, D) + res.float()
    timings = []
    for cfg in candidates(c):
        try:
            err = (run(cfg).float() - ref).abs().max().item() / ref.abs().max().item()
            ms = do_bench(lambda cfg=cfg: run(cfg), warmup=5, rep=30)
        except Exception as exc:  # noqa: BLE001 - a config that does not compile (shared memory) is skipped
            print(f"C={c} {cfg}: {type(exc).__name__}", flush=True)
            continue
        timings.append((ms, err, cfg))
    timings.sort(key=lambda r: r[0])
    best = timings[0][2]
    no_span = do_bench(lambda: _triton_forward(x, w, bias, res, valid[:0], rate, D, pad, 0.1, best), warmup=5, rep=30)
    print(f"C={c}: best config without spans {no_span:.3f} ms", flush=True)
    pick = tiles(c, c)
    pick_ms = next((ms for ms, _, cfg in timings if cfg == pick), float("nan"))
    w2 = w.permute(2, 1, 0).unsqueeze(2).contiguous(memory_format=torch.channels_last)
    x2 = x.unsqueeze(2)
    cudnn_ms = do_bench(lambda: F.conv2d(x2, w2, None, 1, (0, pad), (1, D)), warmup=5, rep=30)
    print(f"\nC={c} T={t}: cuDNN conv alone {cudnn_ms:.3f} ms; heuristic {pick} {pick_ms:.3f} ms", flush=True)
    for ms, err, cfg in timings[:5]:
        print(f"  {ms:.3f} ms {flops / ms / 1e9:6.1f} TFLOP/s {bytes_min / ms / 1e6:6.0f} GB/s err {err:.1e} {cfg}")
    return c, t, cudnn_ms, pick_ms, timings[0][0] if timings else float("nan"), timings[0][2] if timings else {}


rows = [measure_stage(c, rate) for c, rate in STAGES]
print(f"\n{DTYPE} B={B} k={K} d={D} (fused = leaky ReLU + span + conv + bias + residual; cuDNN = conv alone)")
print(f"{'C':>4} {'T':>7} {'cuDNN':>7} {'pick':>7} {'best':>7}  best config")
for c, t, cd, pk, best, cfg in rows:
    print(f"{c:>4} {t:>7} {cd:7.3f} {pk:7.3f} {best:7.3f}  {cfg}")
print(triton.__version__)
