"""GPU: a stage's first convs (one per resblock, all reading the stage input's activation) as one launch.

    PYTHONPATH=. python3 benchmarks/first_convs.py [fp16|bf16] [FRAMES] [--rows B] [--channels C ...]

gsv_v4's fused stages (16, 32 and 64 channels at 480, 240 and 120 samples per frame) run three resblocks (k = 3, 7,
11) whose first convs (dilation 1, same-padded) all read the stage input's leaky ReLU. Each line times, on B rows
of FRAMES frames (default 16 x 1,024, channels-last rows): the three `lrelu_conv` launches as the engine runs them
(input taken as it is, output activated), and the same three as one launch of their weights side by side along the
output channels, each zero-padded to the widest kernel's taps ("concat": one tap loop reads the rows once for all
three), for several tiles; and "pair": k = 11 and 7 side by side, k = 3 on its own. ms per call (median of CUDA-event
timings after warm-up), and each concatenated output's largest difference from the separate launches' outputs.
"""

from __future__ import annotations

import argparse

import kernel_timing
import torch

from batchvoc.engines.fused_resblock import lrelu_conv, tile_list, tiles

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
RATES = {16: 480, 32: 240, 64: 120}
KERNELS = (3, 7, 11)
SLOPE = 0.1


def side_by_side(weights: list[torch.Tensor], biases: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Same-padded [k_j, C, O_j] weights as one [k_max, C, sum O_j]: each zero-padded (centred) to k_max taps."""
    k_max = max(w.shape[0] for w in weights)
    padded = [torch.nn.functional.pad(w, (0, 0, 0, 0, (k_max - w.shape[0]) // 2, (k_max - w.shape[0]) // 2))
              for w in weights]  # fmt: skip
    return torch.cat(padded, dim=2).contiguous(), torch.cat(biases).contiguous()


def conv(x, w, b, valid, rate, tile=None):
    k = w.shape[0]
    return torch.ops.batchvoc.lrelu_conv(x, w, b, None, valid, rate, 1, (k - 1) // 2, SLOPE, activate_input=False,
                                         activate_output=True, tile=tile or [])  # fmt: skip


def run(c: int, dtype: torch.dtype, rows: int, frames: int) -> None:
    """The table's lines for one stage width: the separate launches, then every tile of the side-by-side forms."""
    rate = RATES[c]
    torch.manual_seed(c)
    x = torch.randn(rows, frames * rate, c, device="cuda", dtype=dtype).transpose(1, 2)
    valid = torch.tensor([[0, frames]] * rows, device="cuda").unsqueeze(-1).expand(-1, -1, frames).contiguous()
    ws = [(torch.randn(k, c, c, device="cuda") / (k * c) ** 0.5).to(dtype) for k in KERNELS]
    bs = [torch.randn(c, device="cuda").to(dtype) / 10 for _ in KERNELS]
    separate = [conv(x, w, b, valid, rate) for w, b in zip(ws, bs, strict=True)]
    ms_sep = kernel_timing.median_ms(lambda x: [conv(x, w, b, valid, rate) for w, b in zip(ws, bs, strict=True)], x)
    print(f"| {c} | separate (engine tiles) | {ms_sep:.3f} | 1.00x | |", flush=True)
    w_all, b_all = side_by_side(ws, bs)
    w_pair, b_pair = side_by_side(ws[1:], bs[1:])
    for config in _tiles(c):
        all_tile = tile_list(dict(config, BLOCK_N=min(256, _pow2(3 * c))))
        pair_tile = tile_list(dict(config, BLOCK_N=min(256, _pow2(2 * c))))
        name = f"M{config['BLOCK_M']} w{config['num_warps']} s{config.get('STAGES', 0)}"
        try:
            out = conv(x, w_all, b_all, valid, rate, all_tile)
            err = max((out[:, j * c : (j + 1) * c].float() - s.float()).abs().max().item()
                      for j, s in enumerate(separate))  # fmt: skip
            ms = kernel_timing.median_ms(lambda x, t=all_tile: conv(x, w_all, b_all, valid, rate, t), x)
            ms_pair = kernel_timing.median_ms(
                lambda x, t=pair_tile: (conv(x, w_pair, b_pair, valid, rate, t), conv(x, ws[0], bs[0], valid, rate)), x
            )
        except Exception as e:  # a tile the compiler refuses (shared memory, registers)
            print(f"| {c} | {name} | failed: {type(e).__name__} | | |", flush=True)
            continue
        print(f"| {c} | concat {name} | {ms:.3f} | {ms_sep / ms:.2f}x | {err:.1e} | "
              f"pair {ms_pair:.3f} ({ms_sep / ms_pair:.2f}x) |", flush=True)  # fmt: skip


def _tiles(c: int) -> list[dict[str, int]]:
    """The tiles tried: BLOCK_M 64-256, 4 or 8 warps, the tap loop unrolled or pipelined 3 deep."""
    default = {k: v for k, v in tiles(c, 3 * c, 11, False).items() if k != "STAGES"}
    found = []
    for block_m in (64, 128, 256):
        for warps in (4, 8):
            for stages in (0, 3):
                found.append(dict(default, BLOCK_M=block_m, num_warps=warps, **({"STAGES": stages} if stages else {})))
    return found


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dtype", nargs="?", default="fp16", choices=list(DTYPES))
    parser.add_argument("frames", nargs="?", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64], choices=sorted(RATES))
    args = parser.parse_args()
    lrelu_conv.define()
    kernel_timing.wake_gpu()
    print("| C | launch | ms | speed-up | max diff |\n|---|---|---|---|---|")
    for c in args.channels:
        run(c, DTYPES[args.dtype], args.rows, args.frames)


if __name__ == "__main__":
    main()
