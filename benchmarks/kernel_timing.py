"""What the kernel benchmarks share: the `--device` argument of superrow_tiles.py and im2col_conv.py (read before
triton is imported: `--device cpu` runs Triton's interpreter) and their timer; the CUDA-event timer and the clock
wake-up of dilated_convs.py and upsamplers.py."""

import os
import time
from collections.abc import Callable


def device_args(argv: list[str]) -> tuple[list[str], str]:
    """(argv less `--device NAME`, NAME; "cuda" when absent). For "cpu" sets TRITON_INTERPRET=1, which must happen
    before triton is imported: kernels then run on CPU tensors."""
    args, device = list(argv), "cuda"
    if "--device" in args:
        at = args.index("--device")
        device = args[at + 1]
        del args[at : at + 2]
    if device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    return args, device


def bench(fn: Callable[[], object], device: str) -> float:
    """ms per call: triton's do_bench (median) on a GPU, one wall-clock call in the interpreter."""
    if device == "cuda":
        from triton.testing import do_bench

        return do_bench(fn, warmup=5, rep=30)
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def median_ms(fn: Callable, x, calls: int = 30) -> float:
    """ms per fn(x) on the GPU: the median of `calls` CUDA-event timings after 5 warm-up calls."""
    import torch

    for _ in range(5):
        fn(x)
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(calls)]
    for start, end in events:
        start.record()
        fn(x)
        end.record()
    torch.cuda.synchronize()
    return sorted(s.elapsed_time(e) for s, e in events)[calls // 2]


def wake_gpu() -> None:
    """Large matrix products first: an idle GPU's first milliseconds run at low clocks."""
    import torch

    big = torch.randn(8192, 8192, device="cuda")
    for _ in range(20):
        big @ big
    torch.cuda.synchronize()
