"""GPU: the upsamplers (transposed convs) as cuDNN's channels-last ConvTranspose2d and as polyphase forward convs.

    PYTHONPATH=. python3 benchmarks/upsamplers.py [fp16|bf16|both] [FRAMES] [--rows B] [--presets NAME ...]

For every upsampler of each preset (default gsv_v4 and bigvgan_v2_24khz_100band_256x; channels, k and s from the
preset, p = (k - s) / 2 as the models build them), batch B (default 16) rows of FRAMES (default 1,024) mel frames: the
input has FRAMES times the product of the earlier rates samples. Each runs as engines/layout.ConvTranspose1dAs2d
(cuDNN's "dgrad" kernels), as engines/upsample_phases.PolyphaseConvTranspose1d (one forward conv, s phases) and, where
the engine fuses it, as engines/fused_upsample.FusedUpsample (our kernel, same-padded phases), on channels-last rows
as the engine's activations come, with cuDNN's algorithm timing (torch.backends.cudnn.benchmark) on and off: ms per
call (median of CUDA-event timings after warm-up; the clocks woken first by large matrix products), the polyphase
form's speed-up, and each form's largest absolute difference from an fp32 nn.ConvTranspose1d (TF32 off) on the same
inputs. A `total` line per preset sums its upsamplers (the ConvTranspose2d form ran 1.58 ms per gsv_v4 forward at
B=16, 1,024 frames, fp16, H200, cudnn.benchmark on).
"""

from __future__ import annotations

import argparse
import copy
import math

import kernel_timing
import torch

from batchvoc.engines import fused_upsample, layout
from batchvoc.engines.fused_upsample import MAX_CHANNELS as FUSED_MAX_CHANNELS
from batchvoc.engines.upsample_phases import PolyphaseConvTranspose1d
from batchvoc.models.presets import PRESETS

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
PRESET_NAMES = ("gsv_v4", "bigvgan_v2_24khz_100band_256x")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dtype", nargs="?", default="both", choices=[*DTYPES, "both"])
    parser.add_argument("frames", nargs="?", type=int, default=1024, help="mel frames per row (default 1,024)")
    parser.add_argument("--rows", type=int, default=16, help="batch rows (default 16)")
    parser.add_argument(
        "--presets",
        nargs="+",
        default=list(PRESET_NAMES),
        choices=sorted(PRESETS),
        metavar="NAME",
        help=f"presets (default {' '.join(PRESET_NAMES)})",
    )
    return parser.parse_args(argv)


def upsamplers(preset: str) -> list[tuple[int, int, int, int, int]]:
    """The preset's transposed convs as (C_in, O, k, s, rate in): channels halve per stage from the initial width,
    rate in is the samples per mel frame of the stage's input (the product of the earlier rates)."""
    hp = PRESETS[preset].hparams
    rates, kernels = hp["upsample_rates"], hp["upsample_kernel_sizes"]
    found = []
    for i, (s, k) in enumerate(zip(rates, kernels, strict=True)):
        channels = hp["upsample_initial_channel"] // 2**i
        found.append((channels, channels // 2, k, s, math.prod(rates[:i])))
    return found


def both_forms(conv: torch.nn.ConvTranspose1d, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(ConvTranspose1dAs2d, PolyphaseConvTranspose1d) of conv, on the GPU in dtype."""
    conv = copy.deepcopy(conv).to("cuda", dtype)
    return layout.ConvTranspose1dAs2d(conv), PolyphaseConvTranspose1d(conv)


def fused_form(conv: torch.nn.ConvTranspose1d, dtype: torch.dtype) -> torch.nn.Module | None:
    """conv as fused_upsample.FusedUpsample (channels-last rows, on the GPU in dtype) where the engine fuses it
    (fits within fused_upsample.MAX_CHANNELS), else None."""
    if not fused_upsample.fits(conv, FUSED_MAX_CHANNELS):
        return None
    fused = fused_upsample.FusedUpsample(copy.deepcopy(conv).to("cuda", dtype))
    fused.channels_last = True
    return fused


def reference(conv: torch.nn.ConvTranspose1d, x: torch.Tensor) -> torch.Tensor:
    """conv's fp32 output on x [B, C, T] (any dtype) with TF32 off: what both forms are compared with."""
    allowed = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        return copy.deepcopy(conv).to("cuda", torch.float32)(x.float())
    finally:
        torch.backends.cudnn.allow_tf32 = allowed


def run_preset(preset: str, dtype_name: str, rows: int, frames: int) -> None:
    """One table section: every upsampler of preset in dtype, cudnn.benchmark on and off, then the totals."""
    dtype = DTYPES[dtype_name]
    totals = {True: [0.0, 0.0], False: [0.0, 0.0]}
    for stage, (c_in, out, k, s, rate) in enumerate(upsamplers(preset)):
        torch.manual_seed(stage)
        conv = torch.nn.ConvTranspose1d(c_in, out, k, s, padding=(k - s) // 2)
        x = torch.randn(rows, frames * rate, c_in, device="cuda", dtype=dtype).transpose(1, 2)  # channels-last rows
        ref = reference(conv, x)
        as2d, poly = both_forms(conv, dtype)
        fused = fused_form(conv, dtype)
        errs = [(f(x).float() - ref).abs().max().item() for f in (as2d, poly)]
        fused_err = f"{(fused(x).float() - ref).abs().max().item():.1e}" if fused else "-"
        del ref
        for bench in (True, False):
            torch.backends.cudnn.benchmark = bench
            ms = kernel_timing.median_ms(as2d, x), kernel_timing.median_ms(poly, x)
            totals[bench][0] += ms[0]
            totals[bench][1] += ms[1]
            fused_ms = f"{kernel_timing.median_ms(fused, x):.3f}" if fused else "-"
            print(f"| {preset} | {stage} | {c_in}->{out} | {k} | {s} | {frames * rate} | {dtype_name} | "
                  f"{'on' if bench else 'off'} | {ms[0]:.3f} | {ms[1]:.3f} | {ms[0] / ms[1]:.2f}x | {errs[0]:.1e} | "
                  f"{errs[1]:.1e} | {fused_ms} | {fused_err} |", flush=True)  # fmt: skip
        del x, as2d, poly, fused
    for bench, (as2d_ms, poly_ms) in totals.items():
        print(f"| {preset} | total | | | | | {dtype_name} | {'on' if bench else 'off'} | {as2d_ms:.3f} | {poly_ms:.3f} "
              f"| {as2d_ms / poly_ms:.2f}x | | |", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/upsamplers.py times CUDA kernels: it needs a CUDA GPU")
    kernel_timing.wake_gpu()
    print("| preset | stage | C->O | k | s | T in | dtype | cudnn.benchmark | As2d ms | polyphase ms | speed-up "
          "| As2d err | polyphase err | fused ms | fused err |\n" + "|---" * 15 + "|")  # fmt: skip
    with torch.inference_mode():
        for dtype_name in DTYPES if args.dtype == "both" else [args.dtype]:
            for preset in args.presets:
                run_preset(preset, dtype_name, args.rows, args.frames)
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
