"""GPU: a ResBlock1 pair as one kernel (engines/fused_pair.py) against the two `lrelu_conv` launches it replaces.

    PYTHONPATH=. python3 benchmarks/pair_convs.py [fp16|bf16] [out.json] [--quick]

Every pair of gsv_v4's fused stages (16 / 32 / 64 channels; blocks k = 3, 7, 11; c1 dilations 1, 3, 5), batch 16,
1,024 frames, as the engine runs it: c1's input activated by the kernel or taken as stored, the pair's output
activated too where the next pair takes it so. Per pair: the two launches (their default tiles, host descriptors
as eager calls run them), then the pair kernel's tiles (BLOCK_M, num_warps, STAGES, PER_SM), each checked against
the two launches (err: max abs / max). Prints ms per pair and writes the best pair tile per layer as JSON.
"""

import json
import sys

import torch
from triton.testing import do_bench

from batchvoc.engines.fused_pair import _triton_pair, pair_tile
from batchvoc.engines.fused_resblock import _triton_forward

B, L = 16, 1024
STAGES = [(64, 120), (32, 240), (16, 480)]  # (channels, samples per frame)
BLOCKS = [3, 7, 11]
DILATIONS = [1, 3, 5]
TILES = [(128, 4, 0), (256, 4, 0), (256, 8, 0), (64, 4, 0), (128, 8, 0)]  # (BLOCK_M, num_warps, STAGES)


def pairs() -> list[tuple[int, int, int, int, bool, bool]]:
    """(C, rate, k, d, c1 activates its input, the output stored activated too) as the engine runs gsv_v4."""
    out = []
    for c, rate in STAGES:
        for k in BLOCKS:
            for j, d in enumerate(DILATIONS):
                act_in = k < 7 and j > 0  # from k = 7 the previous pair stores its activation; the first, the stage
                out.append((c, rate, k, d, act_in, k >= 7 and j < len(DILATIONS) - 1))
    return out


def time_pair(c, rate, k, d, act_in, stores, dtype, quick) -> dict:
    gen = torch.Generator(device="cuda").manual_seed(c * k + d)
    t = L * rate

    def rows():
        return torch.randn(B, t, c, device="cuda", dtype=dtype, generator=gen).transpose(1, 2)

    x, x_in = rows(), rows()
    w1, w2 = ((torch.randn(k, c, c, device="cuda", generator=gen) / (c * k) ** 0.5).to(dtype) for _ in range(2))
    b1, b2 = (torch.randn(c, device="cuda", generator=gen).to(dtype) / 10 for _ in range(2))
    valid = torch.tensor([[0, L]] * B, device="cuda").unsqueeze(-1).expand(-1, -1, L).contiguous()
    p1, p2 = d * (k - 1) // 2, (k - 1) // 2
    act = torch.empty_like(x) if stores else None

    def two():
        h = _triton_forward(x_in, w1, b1, None, valid, rate, d, p1, 0.1, act_in, True)
        return _triton_forward(h, w2, b2, x, valid, rate, 1, p2, 0.1, False, False, activated=act)

    want = two().float()
    scale = want.abs().max().item()
    result = {"two": do_bench(two, warmup=10, rep=50), "err": 0.0, "pair": {}}
    tiles = [dict(pair_tile(c, k, act_in), PER_SM=2)] if quick else []
    for m, warps, stages in TILES if not quick else []:
        if stages and act_in:
            continue
        for per_sm in (1, 2, 4):
            tiles.append(dict(BLOCK_M=m, BLOCK_C=max(16, c), num_warps=warps, STAGES=stages, PER_SM=per_sm))
    for stages in (2, 3) if not act_in and not quick else ():
        tiles.append(dict(BLOCK_M=128, BLOCK_C=max(16, c), num_warps=4, STAGES=stages, PER_SM=2))
    for config in tiles:

        def run(config=config):
            return _triton_pair(x_in, x, w1, b1, w2, b2, valid, rate, d, p1, 0.1, act_in, dict(config), act)

        result["err"] = max(result["err"], (run().float() - want).abs().max().item() / scale)
        ms = do_bench(run, warmup=10, rep=50)
        if not result["pair"] or ms < result["pair"]["ms"]:
            result["pair"] = dict(
                ms=ms, tile=config, name="M{BLOCK_M} w{num_warps} s{STAGES} p{PER_SM}".format(**config)
            )
    return result


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[args[0] if args else "fp16"]
    quick = "--quick" in sys.argv
    rows, table = [], {}
    total_two = total_pair = 0.0
    for c, rate, k, d, act_in, stores in pairs():
        r = time_pair(c, rate, k, d, act_in, stores, dtype, quick)
        best = r["pair"]
        total_two, total_pair = total_two + r["two"], total_pair + best["ms"]
        table[f"{c},{k},{d},{int(act_in)},{int(stores)}"] = dict(best["tile"], ms=best["ms"], two_ms=r["two"])
        rows.append(f"| {c} | {k} | {d} | {act_in:d} | {stores:d} | {r['two']:.3f} | {best['ms']:.3f} "
                    f"({best['name']}) | {r['two'] / best['ms']:.2f}x | {r['err']:.1e} |")  # fmt: skip
        print(rows[-1], flush=True)
    print("| C | k | d | act_in | stores | two launches | pair, best tile | speed-up | err |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"| all {len(rows)} pairs | | | | | {total_two:.3f} | {total_pair:.3f} | {total_two / total_pair:.2f}x | |")
    if len(args) > 1:
        with open(args[1], "w") as f:
            json.dump(table, f, indent=1)


if __name__ == "__main__":
    main()
