"""Offline, no GPU: registers, spills and shared memory of the anti-alias kernels per tile on sm_90 (H100/H200),
and the occupancy they allow (issue 18).

    PYTHONPATH=. python benchmarks/antialias_ptxas.py [--kernels up_pairs,down_inside] [--stage 768,4]

Kernels: the two-pass "v1" (up_snake, down) and "pairs" (up_pairs, down_inside), the one-pass one_pass_gather and
one_pass_dot (time block: the 2x-rate rows on chip).

Each kernel compiles through Triton (`triton.compile` of an `ASTSource` for `GPUTarget("cuda", 90, 32)`) with the
specializations a launch on BigVGAN v2 24k's stage gets (fp16, channels-last, per-frame span, integers divisible by
16 where they are), then its PTX through Triton's ptxas with -v. Occupancy per SM: 65,536 registers (allocated per
warp in units of 256), 228 KiB shared memory (1 KiB reserved per block), 64 warps, 32 blocks. The GPU's Triton may
differ (H200 session 3: triton 3.6); counts can move a few registers.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from batchvoc.engines import antialias_kernels, one_pass_kernels
from batchvoc.engines import fused_antialias as fa
from batchvoc.engines.fused_antialias import Tile

POINTERS = {"x_ptr": "*fp16", "a_ptr": "*fp16", "y_ptr": "*fp16", "valid_ptr": "*i64"}  # others: *fp32 taps
FILTER = dict(FIRST0=-3, FIRST1=-2, TAPS=6, UP_TAPS=6, LEFT=5, DOWN_TAPS=12)  # BigVGAN's 12-tap Kaiser filters
# kernel -> (time block's constexpr name, candidate tiles)
CANDIDATES = {
    "up_snake": ("BLOCK_M", [Tile(32, 64, 4), Tile(16, 64, 4), Tile(32, 64, 8), Tile(64, 64, 8), Tile(16, 64, 2)]),
    "down": ("BLOCK_T", [Tile(32, 64, 4), Tile(16, 64, 4), Tile(32, 64, 8), Tile(64, 64, 8), Tile(16, 64, 2)]),
    "up_pairs": ("BLOCK_T", [Tile(16, 64, 4), Tile(8, 64, 4), Tile(16, 64, 8), Tile(32, 64, 8), Tile(32, 128, 8),
                             Tile(16, 128, 8), Tile(8, 64, 2)]),
    "down_inside": ("BLOCK_T", [Tile(32, 64, 4), Tile(16, 64, 4), Tile(32, 64, 8), Tile(64, 64, 8),
                                Tile(32, 128, 8), Tile(16, 128, 8), Tile(16, 64, 2)]),
    "one_pass_gather": ("ROWS", [Tile(128, 64, 8), Tile(64, 64, 8), Tile(64, 32, 8), Tile(64, 32, 4),
                                 Tile(128, 32, 8)]),
    "one_pass_dot": ("ROWS", [Tile(64, 64, 8), Tile(64, 32, 4), Tile(64, 64, 4)]),
}  # fmt: skip


def ptxas() -> str:
    """The ptxas Triton itself runs for sm_90."""
    from triton.backends.nvidia.compiler import get_ptxas

    return get_ptxas(90).path


def specialization(fn, channels: int, rate: int, block_name: str, tile: Tile) -> tuple[dict, dict, dict]:
    """(signature, constexprs, attributes) of a channels-last launch at this stage, as Triton's launcher makes
    them: integers equal to 1 become constants, pointers and integers divisible by 16 are marked so."""
    frames = 938
    length = frames * rate
    ints = dict(C=channels, T=length, rate=rate, sxb=channels * length, sxc=1, sxt=channels, sac=1, sat=channels,
                sab=2 * channels * length, syb=channels * length, syc=1, syt=channels, svb=2 * frames, svk=frames,
                svf=1)  # fmt: skip
    const = {k: v for k, v in FILTER.items() if k in fn.arg_names}
    const |= dict(HAS_SPAN=True, FAST_SIN=True, ALIGN=8, C_FIRST=False, BLOCK_C=tile.block_c)
    const[block_name] = tile.block_t
    const |= dict(STEP=(tile.block_t - FILTER["DOWN_TAPS"]) // 2 + 1, PARTS=2, IEEE=False)  # one-pass "gather", "dot"
    const |= {k: v for k, v in ints.items() if v == 1}
    const = {k: v for k, v in const.items() if k in fn.arg_names}
    sig = {n: "constexpr" if n in const else POINTERS.get(n, "*fp32" if n.endswith("_ptr") else "i32")
           for n in fn.arg_names}  # fmt: skip
    div16 = [n for n in fn.arg_names if n not in const and (n.endswith("_ptr") or ints.get(n, 1) % 16 == 0)]
    return sig, const, {(fn.arg_names.index(n),): [["tt.divisibility", 16]] for n in div16}


def launched(name: str, channels: int, tile: Tile) -> Tile:
    """The tile a channels-last launch at this width runs (fused_antialias narrows the channel block)."""
    if name.startswith("one_pass"):
        return tile._replace(block_c=fa._channel_block(name.rsplit("_", 1)[1], channels, tile))
    return Tile(*fa._two_pass_block(torch.empty(1, 2, channels).transpose(1, 2), tile), tile.num_warps)


def resources(name: str, channels: int, rate: int, tile: Tile, stages: int = 3) -> dict:
    """{regs, spill (bytes stored), smem (bytes)} of one kernel at one tile (as launched at this width) for sm_90."""
    tile = launched(name, channels, tile)
    fn = getattr(one_pass_kernels if name.startswith("one_pass") else antialias_kernels, name)
    block_name = CANDIDATES[name][0]
    src = ASTSource(fn, *specialization(fn, channels, rate, block_name, tile))
    compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=tile.num_warps,
                                                                                  num_stages=stages))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        ptx = Path(tmp) / "k.ptx"
        ptx.write_text(compiled.asm["ptx"])
        out = subprocess.run([ptxas(), "-arch=sm_90a", "-v", str(ptx), "-o", str(Path(tmp) / "k.cubin")],
                             capture_output=True, text=True, check=True).stderr  # fmt: skip
    regs = int(re.search(r"Used (\d+) registers", out).group(1))
    spill = int(re.search(r"(\d+) bytes spill stores", out).group(1))
    return dict(regs=regs, spill=spill, smem=compiled.metadata.shared)


def occupancy(regs: int, smem: int, warps: int) -> tuple[int, float]:
    """(blocks per SM, fraction of the SM's 64 warps) on sm_90."""
    per_warp = -(-regs * 32 // 256) * 256
    by_regs = 65536 // per_warp // warps
    by_smem = 228 * 1024 // (smem + 1024)
    blocks = min(by_regs, by_smem, 64 // warps, 32)
    return blocks, blocks * warps / 64


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernels", default=",".join(CANDIDATES))
    p.add_argument("--stage", default="768,4", help="channels,samples per frame (default 768,4)")
    opt = p.parse_args(argv)
    channels, rate = map(int, opt.stage.split(","))
    print(f"sm_90, fp16, channels-last, C={channels}, rate={rate}, per-frame span; triton {triton.__version__}")
    print("tile: as launched at this width (the channel block narrowed to the power of two covering the channels)")
    print(f"{'kernel':<12} {'tile (t, c, warps)':<18} {'elem/thr':>8} {'regs':>5} {'spill':>6} {'smem':>6} "
          f"{'blocks/SM':>9} {'occupancy':>9}")  # fmt: skip
    for name in opt.kernels.split(","):
        for tile in CANDIDATES[name][1]:
            got = resources(name, channels, rate, tile)
            tile = launched(name, channels, tile)
            blocks, occ = occupancy(got["regs"], got["smem"], tile.num_warps)
            per_thread = tile.block_t * tile.block_c // (32 * tile.num_warps)
            print(f"{name:<12} {str(tuple(tile)):<18} {per_thread:>8} {got['regs']:>5} {got['spill']:>6} "
                  f"{got['smem']:>6} {blocks:>9} {occ:>9.0%}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
