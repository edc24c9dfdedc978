"""GPU: time BigVGAN's anti-aliased Snake alone, two-pass against one-pass, over a few tiles (issue 18).

    PYTHONPATH=. python3 benchmarks/antialias_sweep.py [fp16,bf16] [seconds]

Shapes: BigVGAN v2 24 kHz 100-band 256x at 938 frames, batch 16, one shape per stage (channels 768 .. 24, samples
per row 938 x 4 .. 938 x 256), channels-last as the engines run it, with a per-frame span (whole rows) as the
engines pass. For each dtype and stage: the two-pass kernels (`antialiased_snake`) and each one-pass method
(`antialiased_snake_one_pass`) per candidate tile, ms per call (triton's do_bench), GB/s of the one-pass minimum
traffic (read x, write y) and the error against the two-pass output. Ends with the best tile per method over all
stages (what ONE_PASS_TILES in engines/fused_antialias.py should hold) and a whole model's activation time per
batch (18 activations per stage, one more after the last). Candidate tiles stop once `seconds` (default 75) have
passed, so the run stays under 90 s; the table's own tile is always timed.
"""

from __future__ import annotations

import sys
import time

import torch

from batchvoc.engines import fused_antialias as fa
from batchvoc.engines.fused_antialias import Tile
from batchvoc.models.activations import SnakeBeta
from batchvoc.models.antialias import Activation1d

BATCH, FRAMES = 16, 938
STAGES = [(768, 4), (384, 16), (192, 32), (96, 64), (48, 128), (24, 256)]  # (channels, samples per frame)
# Candidates that compile for sm_90 without register spills (ptxas, offline); the table's own tile comes first.
CANDIDATES = {
    "recompute": [Tile(32, 64, 4), Tile(64, 64, 4), Tile(64, 32, 4), Tile(128, 64, 8)],
    "gather": [Tile(64, 64, 4), Tile(128, 64, 8), Tile(128, 32, 4), Tile(256, 32, 8)],
    "dot": [Tile(64, 64, 4), Tile(64, 64, 8), Tile(64, 32, 4), Tile(128, 64, 8), Tile(128, 32, 8)],
}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
DEVICE = "cuda"


def tensors(channels: int, rate: int, dtype: torch.dtype) -> tuple:
    """The op's arguments for one stage: x [B, C, T] channels-last, SnakeBeta parameters, a per-frame span."""
    act = SnakeBeta(channels, alpha_logscale=True)
    with torch.no_grad():
        for p in act.parameters():
            p.normal_(0, 0.5)
    fused = fa.FusedActivation1d(Activation1d(act)).to(DEVICE, dtype)
    alpha, inv = fused.act.params_fp32()
    x = torch.randn(BATCH, FRAMES * rate, channels, device=DEVICE, dtype=dtype).transpose(1, 2)
    valid = torch.tensor([[0, FRAMES]] * BATCH, device=DEVICE).unsqueeze(-1).expand(-1, -1, FRAMES).contiguous()
    return x, alpha, inv, valid, rate, fused.up_taps, fused.up_first, fused.down_taps, fused.down_left


def bench(fn) -> float:
    from triton.testing import do_bench

    return do_bench(fn, warmup=3, rep=15)


def sweep_stage(args: tuple, deadline: float) -> dict:
    """{"two_pass": ms, method: [(ms, err, tile), ...] fastest first} for one stage."""
    want = fa.antialiased_snake(*args)
    scale = max(1.0, want.float().abs().max().item())
    out = {"two_pass": bench(lambda: fa.antialiased_snake(*args))}
    for method, candidates in CANDIDATES.items():
        pick = fa.ONE_PASS_TILES[(method, True)]  # _one_pass_triton narrows its channel block to C
        timings = []
        for tile in dict.fromkeys([pick, *candidates]):
            if tile != pick and time.monotonic() > deadline:
                continue
            try:
                got = fa._one_pass_triton(*args, method, tile)
                err = (got.float() - want.float()).abs().max().item() / scale
                timings.append((bench(lambda t=tile, m=method: fa._one_pass_triton(*args, m, t)), err, tile))
            except Exception as exc:  # noqa: BLE001 - a tile that does not compile (registers, shared memory)
                print(f"   {method} {tile}: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
        out[method] = sorted(timings, key=lambda t: t[0])
    return out


def report_stage(name: str, channels: int, length: int, result: dict) -> None:
    nbytes = 2 * BATCH * channels * length * 2  # one-pass minimum: read x, write y (2-byte dtypes)
    line = f"{name} C={channels:>4} T={length:>7}: two-pass {result['two_pass']:.3f} ms"
    line += f" ({nbytes / result['two_pass'] / 1e6:.0f} GB/s)"
    for method in CANDIDATES:
        if result[method]:
            ms, err, tile = result[method][0]
            line += f" | {method} {ms:.3f} ms ({nbytes / ms / 1e6:.0f} GB/s, err {err:.1e}) {tuple(tile)}"
    print(line, flush=True)


def best_tiles(results: list[dict]) -> dict:
    """Per method: the tile with the least total time over the stages that timed it in all of them."""
    best = {}
    for method in CANDIDATES:
        totals: dict[Tile, float] = {}
        timed = [{tile: ms for ms, _, tile in r[method]} for r in results]
        for tile in set.intersection(*(set(t) for t in timed)) if timed else ():
            totals[tile] = sum(t[tile] for t in timed)
        if totals:
            best[method] = min(totals.items(), key=lambda kv: kv[1])
    return best


def model_ms(results: list[dict], method: str) -> float:
    """A whole BigVGAN forward's activation time per batch with method's fastest tile per stage."""
    times = [r["two_pass"] if method == "two_pass" else r[method][0][0] for r in results]
    return 18 * sum(times) + times[-1]


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("antialias_sweep.py needs a CUDA GPU (with triton); none here")
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else list(DTYPES)
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 75.0
    start = time.monotonic()
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__}; batch {BATCH}, {FRAMES} frames, channels-last")
    for i, name in enumerate(names):
        deadline = start + budget * (i + 1) / len(names)
        results = []
        for channels, rate in STAGES:
            results.append(sweep_stage(tensors(channels, rate, DTYPES[name]), deadline))
            report_stage(name, channels, FRAMES * rate, results[-1])
        audio_s = BATCH * FRAMES * 256 / 24000
        for method in ("two_pass", *CANDIDATES):
            if method == "two_pass" or all(r[method] for r in results):
                ms = model_ms(results, method)
                print(f"{name} {method:>9}: {ms:7.2f} ms of activations per batch ({audio_s / ms * 1e3:.0f}x real time"
                      " for the activations alone)")  # fmt: skip
        for method, (tile, total) in best_tiles(results).items():
            print(f'{name} ONE_PASS_TILES[("{method}", True)] = {tile!r}  # {total:.3f} ms over the stages')
    print(f"done in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
