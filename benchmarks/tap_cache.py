"""GPU experiment: where lrelu_conv's taps read their rows from. Pipelined pointer loads (STAGES > 0) are
asynchronous copies that bypass L1 (cp.async.cg), so each of a layer's k taps re-reads its [BLOCK_M, C] rows from
L2, and block copies (TMA) always come from L2; with ROWS_L1 the copies are cp.async.ca and neighbouring taps' rows
come from L1. Per gsv_v4 fused layer: the engine's pick (`tiles()`, block copies from 32 channels) against pointer
tiles with and without ROWS_L1.

    PYTHONPATH=. python3 benchmarks/tap_cache.py [fp16|bf16] [best.json] [C:SAMPLES_PER_FRAME ...] [--device cpu]

best.json: per layer key of the engine option tile_table ("C_IN,KSIZE,ACT"), the tile of least time over the
dilations measured for that key (d=1 counted 4 times: a ResBlock1 runs it 4 times of 6), the pick included.

--device cpu runs a tiny shape through Triton's interpreter (a check that every variant computes the conv).
"""

import json
import sys

import kernel_timing

ARGS, DEVICE = kernel_timing.device_args(sys.argv[1:])  # before triton is imported

import torch  # noqa: E402

from batchvoc.engines.fused_resblock import _triton_forward, tiles  # noqa: E402

DTYPE = {"fp16": torch.float16, "bf16": torch.bfloat16}[ARGS[0] if ARGS else "fp16"]
if DEVICE == "cpu":
    DTYPE = torch.float32
B, L = (16, 1024) if DEVICE == "cuda" else (2, 6)
OUT = next((a for a in ARGS[1:] if a.endswith(".json")), None)
STAGES = [tuple(map(int, a.split(":"))) for a in ARGS[1:] if ":" in a] or [(16, 480), (32, 240), (64, 120)]
LAYERS = [(3, 1, False), (3, 3, True), (7, 1, False), (7, 3, False), (11, 1, False), (11, 5, False)]


def candidates(c: int):
    """Pointer tiles: heights, pipeline depths, warps, with and without ROWS_L1."""
    if DEVICE == "cpu":
        yield dict(BLOCK_M=16, BLOCK_N=c, BLOCK_C=c, num_warps=4, num_stages=1, STAGES=2, ROWS_L1=1)
        return
    for bm in (128, 256):
        for stages in (2, 3):
            for warps in (4, 8) if bm == 256 else (4,):
                for l1 in (0, 1):
                    yield dict(BLOCK_M=bm, BLOCK_N=min(c, 64), BLOCK_C=max(16, c), num_warps=warps, num_stages=1,
                               STAGES=stages, ROWS_L1=l1)  # fmt: skip


TIMES: dict[tuple[int, int, int], dict[str, float]] = {}  # (C, k, act) -> {tile as JSON: weighted ms summed over d}
TILES: dict[str, dict] = {}


def record(c: int, k: int, d: int, act: bool, cfg: dict, ms: float) -> None:
    key = json.dumps(cfg, sort_keys=True)
    TILES[key] = cfg
    times = TIMES.setdefault((c, k, int(act)), {})
    times[key] = times.get(key, 0.0) + ms * (4 if d == 1 else 1)


def measure(c: int, rate: int, k: int, d: int, act: bool) -> tuple:
    """(C, k, d, act, pick ms, best ms without ROWS_L1, best ms with it, its config, max error)."""
    t, pad = L * rate, (k - 1) * d // 2
    x = torch.randn(B, t, c, device=DEVICE, dtype=DTYPE).transpose(1, 2)
    res = torch.randn(B, t, c, device=DEVICE, dtype=DTYPE).transpose(1, 2)
    w = (torch.randn(k, c, c, device=DEVICE) / (c * k) ** 0.5).to(DTYPE)
    bias = torch.randn(c, device=DEVICE, dtype=DTYPE)
    valid = torch.tensor([[0, L - 1]] * B, device=DEVICE).unsqueeze(-1).expand(-1, -1, L).contiguous()
    args = (x, w, bias, res, valid, rate, d, pad, 0.1, act)
    pick = tiles(c, c, k, act)
    ref = _triton_forward(*args, config=pick).float()
    base = kernel_timing.bench(lambda: _triton_forward(*args, config=pick), DEVICE)
    record(c, k, d, act, pick, base)
    best = {0: (float("inf"), None), 1: (float("inf"), None)}
    worst_err = 0.0
    for cfg in candidates(c):
        try:
            out = _triton_forward(*args, config=cfg, descriptor="pointer")
            ms = kernel_timing.bench(lambda cfg=cfg: _triton_forward(*args, config=cfg, descriptor="pointer"), DEVICE)
        except Exception as exc:  # noqa: BLE001 - a config that does not compile (registers, shared memory)
            print(f"C={c} k={k} {cfg}: {type(exc).__name__}", flush=True)
            continue
        worst_err = max(worst_err, (out.float() - ref).abs().max().item())
        record(c, k, d, act, cfg, ms)
        print(f"   C={c} k={k} d={d} act={act:d}: {ms:.3f} ms {cfg}", flush=True)
        if ms < best[cfg["ROWS_L1"]][0]:
            best[cfg["ROWS_L1"]] = (ms, cfg)
    print(f"C={c:>3} k={k:>2} d={d} act={act:d}: pick {base:.3f} | .cg {best[0][0]:.3f} | .ca {best[1][0]:.3f} "
          f"{best[1][1]} err {worst_err:.1e}", flush=True)  # fmt: skip
    return (c, k, d, act, base, best[0][0], best[1][0], best[1][1], worst_err)


rows = [measure(c, rate, k, d, act) for c, rate in STAGES for k, d, act in LAYERS]
print(f"\n{DTYPE} B={B} on {DEVICE} (ms per call; pick = the engine's tile, block copies from 32 channels)\n")
print("| C | k | d | act | pick | pointer, L2 (.cg) | pointer, L1 (.ca) | .ca vs pick | best .ca tile | max err |")
print("|---|---|---|---|---|---|---|---|---|---|")
for c, k, d, act, base, cg, ca, cfg, err in rows:
    tile = f"{cfg['BLOCK_M']}/{cfg['STAGES']}/{cfg['num_warps']}w" if cfg else "-"
    print(f"| {c} | {k} | {d} | {act:d} | {base:.3f} | {cg:.3f} | {ca:.3f} | {base / ca:.2f}x | {tile} | {err:.1e} |")

if OUT:
    table = {f"{c},{k},{act}": TILES[min(times, key=times.get)] for (c, k, act), times in TIMES.items()}
    with open(OUT, "w") as f:
        json.dump(table, f, indent=1)
    print(f"\n{OUT}: " + ", ".join(f"{key} {cfg}" for key, cfg in table.items()))
