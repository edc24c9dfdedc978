"""GPU: what a compiled graph's fused convolutions lose without host-made block-copy descriptors, and what
descriptors made on the device (fused_resblock.DEVICE_DESCRIPTORS) win back.

    PYTHONPATH=. python3 benchmarks/traced_block_copies.py [fp16|bf16]

For each gsv_v4 resblock layer shape whose tile takes block copies (`tiles()`: STAGES set), batch 16, 1024 frames:
the fused step with its descriptor made on the host (what eager calls run), made on the device (what a traced
launch can run), and as pointer loads (what a traced launch runs otherwise: the same tile unrolled, the fastest
unrolled tile of 64/128/256 time steps, and the tap loop pipelined 2-4 deep, PIPELINED_POINTER_LOADS). Each timed launch
equals the plain-torch step (err). Totals count each layer shape once.
"""

import sys

import torch
import triton
from triton.testing import do_bench

from batchvoc.engines.fused_resblock import _torch_forward, _triton_forward, tiles

DTYPE = {"fp16": torch.float16, "bf16": torch.bfloat16}[sys.argv[1] if len(sys.argv) > 1 else "fp16"]
B, L = 16, 1024
STAGES = [(64, 120), (32, 240)]  # (channels, samples per frame): gsv_v4's fused stages with block-copy tiles
KERNELS = [(3, 1), (7, 3), (11, 5)]


def scratch(size: int, alignment: int, stream) -> torch.Tensor:
    """Global scratch for device-made descriptors (a compiled graph's launcher allocates its own)."""
    return torch.empty(size, device="cuda", dtype=torch.int8)


def time_layer(c: int, rate: int, k: int, d: int, act: bool) -> dict[str, float] | None:
    """ms per launch by way of making the rows' loads; None when the layer's tile has no block copies."""
    pick = tiles(c, c, k, act)
    if "STAGES" not in pick:
        return None
    t = L * rate
    gen = torch.Generator(device="cuda").manual_seed(c * k)
    x = torch.randn(B, t, c, device="cuda", dtype=DTYPE, generator=gen).transpose(1, 2)
    res = torch.randn(B, t, c, device="cuda", dtype=DTYPE, generator=gen).transpose(1, 2)
    w = (torch.randn(k, c, c, device="cuda", generator=gen) / (c * k) ** 0.5).to(DTYPE)
    bias = torch.zeros(c, device="cuda", dtype=DTYPE)
    valid = torch.tensor([[0, L]] * B, device="cuda").unsqueeze(-1).expand(-1, -1, L).contiguous()
    args = (x, w, bias, res, valid, rate, d, (k - 1) * d // 2, 0.1, act)
    want = _torch_forward(*args).float()
    pointer = {k_: v for k_, v in pick.items() if k_ != "STAGES"}
    ways = {"host": (pick, "host"), "device": (pick, "device"), "pointer": (pointer, "pointer")}
    ways.update({f"pointer M={m}": (dict(pointer, BLOCK_M=m), "pointer") for m in (64, 128, 256)
                 if m != pick["BLOCK_M"]})  # fmt: skip
    ways.update({f"pointer stages={n}": (dict(pointer, STAGES=n), "pointer") for n in (2, 3, 4)})
    ways.update({f"pointer stages={n} M=64": (dict(pointer, STAGES=n, BLOCK_M=64), "pointer") for n in (2, 3)})
    out = {}
    for name, (config, descriptor) in ways.items():

        def run(config=config, descriptor=descriptor):
            return _triton_forward(*args, config=config, descriptor=descriptor)

        err = (run().float() - want).abs().max().item() / want.abs().max().item()
        out[name] = do_bench(run, warmup=10, rep=50)
        print(f"   C={c} k={k} act={act:d} {name}: {out[name]:.3f} ms (err {err:.1e})", flush=True)
    return out


def main() -> None:
    triton.set_allocator(scratch)
    rows = []
    for c, rate in STAGES:
        for k, d in KERNELS:
            for act in (True, False):
                ms = time_layer(c, rate, k, d, act)
                if ms is not None:
                    best_pointer = min(v for name, v in ms.items() if name.startswith("pointer"))
                    piped = ms["pointer stages=3"]
                    rows.append((c, k, act, ms["host"], ms["device"], ms["pointer"], piped, best_pointer))
    print(f"\n{DTYPE} B={B} frames={L} (ms per launch)")
    print(f"{'C':>3} {'k':>3} {'act':>3} {'host':>7} {'device':>7} {'pointer':>7} {'piped 3':>7} {'best ptr':>8}")
    for c, k, act, *ms in rows:
        print(f"{c:>3} {k:>3} {act:>3d} " + " ".join(f"{v:7.3f}" for v in ms))
    totals = [sum(r[i] for r in rows) for i in range(3, 8)]
    print(f"total       {totals[0]:7.3f} {totals[1]:7.3f} {totals[2]:7.3f} {totals[3]:7.3f} {totals[4]:8.3f}  "
          f"(device / host {totals[1] / totals[0]:.3f}, pointer / host {totals[2] / totals[0]:.3f}, "
          f"pipelined / host {totals[3] / totals[0]:.3f}, best / host {totals[4] / totals[0]:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
