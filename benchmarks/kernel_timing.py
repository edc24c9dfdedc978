"""What the kernel benchmarks (superrow_tiles.py, im2col_conv.py) share: their `--device` argument (read before
triton is imported: `--device cpu` runs Triton's interpreter) and their timer."""

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
