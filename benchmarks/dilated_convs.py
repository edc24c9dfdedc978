"""GPU: cuDNN's channels-last dilated convolutions, as the model's form and folded (engines/layout.Conv1dAs2d).

    PYTHONPATH=. python3 benchmarks/dilated_convs.py [fp16|bf16] [FRAMES]

For gsv_v4's cuDNN stages (256 channels at 10 samples per frame, 128 at 60), batch 16, FRAMES (default 1,024)
frames per row, each (k, d): Conv1dAs2d as a (1, k) kernel with dilation d on [B, C, 1, T], and folded (x seen as
[B, C, T / d, d], a (k, 1) kernel, no dilation), ms per call (median of CUDA-event timings after warm-up; the clocks
woken first by large matrix products), cuDNN's algorithm timing on as the inductor engine runs it; `err` is the
largest difference between the two outputs.
"""

import sys

import kernel_timing
import torch

from batchvoc.engines import layout


def both_forms(channels: int, k: int, d: int, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(dilated, folded) Conv1dAs2d of one random same-padded conv."""
    conv = torch.nn.Conv1d(channels, channels, k, dilation=d, padding=d * (k - 1) // 2)
    forms = []
    for fold_from in (10**6, 1):
        layout.FOLD_MIN_KSIZE = fold_from
        forms.append(layout.Conv1dAs2d(conv).to("cuda", dtype))
    return forms[0], forms[1]


def main() -> None:
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[sys.argv[1] if len(sys.argv) > 1 else "fp16"]
    frames = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    torch.backends.cudnn.benchmark = True
    kernel_timing.wake_gpu()
    print("| C | k | d | dilated ms | folded ms | err |\n|---|---|---|---|---|---|")
    with torch.inference_mode():
        for channels, rate in ((256, 10), (128, 60)):
            x = torch.randn(16, frames * rate, channels, device="cuda", dtype=dtype).transpose(1, 2)
            for k, d in ((3, 3), (3, 5), (7, 3), (7, 5), (11, 3), (11, 5)):
                dilated, folded = both_forms(channels, k, d, dtype)
                err = (dilated(x).float() - folded(x).float()).abs().max().item()
                ms = kernel_timing.median_ms(dilated, x), kernel_timing.median_ms(folded, x)
                print(f"| {channels} | {k} | {d} | {ms[0]:.3f} | {ms[1]:.3f} | {err:.1e} |", flush=True)


if __name__ == "__main__":
    main()
