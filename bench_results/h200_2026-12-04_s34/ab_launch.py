"""Session 34, call 3: the package's kernels with Triton's shared-memory attributes (session 33's launch_attrs.py
patch of AOTInductor's loadKernel), A/B on one machine, both packages loaded (not built) in one process.

    PYTHONPATH=. python3 ab_launch.py build A|B     # in a process of its own: the package into /tmp/bvc_A or _B
    PYTHONPATH=. python3 ab_launch.py measure OUT   # both loaded; the bench's stream alternated A, B, A, B, ...
"""

import batchvoc  # noqa: F401  before torch (native.py)

# isort: split

import json
import statistics
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from batchvoc.bench import timed
from batchvoc.device_defaults import default_row_length
from batchvoc.models import load_vocoder
from batchvoc.runtime import EngineOptions, assemble, plan_chunks
from batchvoc.stream import audio_of

sys.path.insert(0, str(Path(__file__).parents[1] / "h200_2026-12-04_s33"))
UTTERANCES, FRAMES, BATCH = 256, 1000, 16


def runtime(variant: str):
    model, preset = load_vocoder("gsv_v4", "random")
    plan = plan_chunks(model, preset, 1, None, default_row_length(torch.device("cuda"), preset.frame_rate))
    options = EngineOptions("aoti", "fp16", BATCH, plan.chunk_frames, "cuda", f"/tmp/bvc_{variant}", {})
    return assemble(model, preset, options, shape=(BATCH, plan.chunk_frames + 2 * plan.context)), preset


def build(variant: str) -> None:
    if variant == "B":
        import launch_attrs
        from torch._inductor.codegen.cuda.device_op_overrides import CUDADeviceOpOverrides

        CUDADeviceOpOverrides.kernel_driver = launch_attrs.kernel_driver
    rt, _ = runtime(variant)
    print(variant, rt.engine.load_path, rt.ready_s)
    for package in Path(f"/tmp/bvc_{variant}/aoti").glob("*.pt2"):
        with zipfile.ZipFile(package) as z:
            cpp = [n for n in z.namelist() if n.endswith(".cpp")]
            text = "".join(z.read(n).decode(errors="replace") for n in cpp)
        print(variant, package.name, "cpp files", len(cpp), "sharedLikeTriton" in text,
              text.count("CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES"))  # fmt: skip


def utterances(preset) -> tuple[list, float]:
    """The bench's input (seed 0): (items, audio seconds)."""
    rng = np.random.default_rng(0)
    items = [(f"item{i}", (rng.standard_normal((preset.n_mels, FRAMES)) * 2 - 6).astype(np.float32))
             for i in range(UTTERANCES)]  # fmt: skip
    return items, UTTERANCES * FRAMES * preset.hop_length / preset.sample_rate


def alternate(streams: dict, items: list, audio_s: float, rounds: int = 6) -> dict[str, list[float]]:
    """x real time per round and stream: 2 warm-up runs each, then `rounds` rounds of 5 runs (median) per stream."""
    device = torch.device("cuda")
    for s in streams.values():
        for _ in range(2):
            list(audio_of(s, items))
    results = {v: [] for v in streams}
    for _ in range(rounds):
        for v, s in streams.items():
            times = [timed(lambda s=s: list(audio_of(s, items)), device)[0] for _ in range(5)]
            results[v].append(audio_s / statistics.median(times))
    return results


def conv_kernels(streams: dict, items: list, forwards: int = 16) -> dict[str, dict[str, float]]:
    """Per stream, GPU time per forward (us) of the convolution kernels (ours, cuDNN's sm90) over one run."""
    sums = {}
    for v, s in streams.items():
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            list(audio_of(s, items))
            torch.cuda.synchronize()
        sums[v] = {e.key: round(e.device_time_total / forwards, 1) for e in prof.key_averages()
                   if "lrelu_conv" in e.key or "sm90" in e.key}  # fmt: skip
    return sums


def measure(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    engines = {v: runtime(v) for v in "AB"}
    items, audio_s = utterances(engines["A"][1])
    streams = {v: rt.stream() for v, (rt, _) in engines.items()}
    results = alternate(streams, items, audio_s)
    tma = conv_kernels(streams, items)
    report = dict(x_realtime=results, median={v: statistics.median(r) for v, r in results.items()}, kernels_us=tma)
    (out / "ab.json").write_text(json.dumps(report, indent=1))
    a, b = report["median"]["A"], report["median"]["B"]
    print("x real time per round A:", [round(x, 1) for x in results["A"]])
    print("x real time per round B:", [round(x, 1) for x in results["B"]])
    print(f"median A {a:.1f}  B {b:.1f}  B/A {b / a:.4f}")
    for v in "AB":
        print(v, tma[v])


if __name__ == "__main__":
    build(sys.argv[2]) if sys.argv[1] == "build" else measure(Path(sys.argv[2]))
