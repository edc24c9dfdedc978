"""For session 35 (not yet run): aoti's two untested leads after call 3, A/B on one machine, all loaded in one process
beside the inductor engine: (C) the package's TMA descriptors typed FLOAT16 as Triton's launcher types an fp16
tensor (torch's initTMADescriptor: UINT16 for any 2-byte element); (A1) the plain package with one model instance
(batchvoc's `aoti._runners`: 2 on a GPU).

    PYTHONPATH=. python3 next_leads.py build A|C     # each in a process of its own: /tmp/bvc_A, /tmp/bvc_C
    PYTHONPATH=. python3 next_leads.py measure OUT   # inductor (/tmp/bvc_I), A, A1, C alternated, then profiled
"""

import batchvoc  # noqa: F401  before torch (native.py)

# isort: split

import json
import statistics
import sys
from pathlib import Path

import torch
from ab_launch import BATCH, alternate, conv_kernels, utterances

from batchvoc.device_defaults import default_row_length
from batchvoc.engines import aoti
from batchvoc.models import load_vocoder
from batchvoc.runtime import EngineOptions, assemble, plan_chunks

UINT16 = "type = CU_TENSOR_MAP_DATA_TYPE_UINT16;"


def runtime(backend: str, cache: str):
    model, preset = load_vocoder("gsv_v4", "random")
    plan = plan_chunks(model, preset, 1, None, default_row_length(torch.device("cuda"), preset.frame_rate))
    options = EngineOptions(backend, "fp16", BATCH, plan.chunk_frames, "cuda", cache, {})
    return assemble(model, preset, options, shape=(BATCH, plan.chunk_frames + 2 * plan.context)), preset


def build(variant: str) -> None:
    if variant == "C":
        from torch._inductor.codegen.cuda.device_op_overrides import CUDADeviceOpOverrides

        original = CUDADeviceOpOverrides.tma_descriptor_helpers
        text = original(CUDADeviceOpOverrides())
        print("UINT16 lines patched:", text.count(UINT16))
        if not text.count(UINT16):
            sys.exit("this torch's helper has no UINT16 line")
        CUDADeviceOpOverrides.tma_descriptor_helpers = lambda self: original(self).replace(
            UINT16, "type = CU_TENSOR_MAP_DATA_TYPE_FLOAT16;"
        )
    rt, _ = runtime("aoti", f"/tmp/bvc_{variant}")
    print(variant, rt.engine.load_path, rt.ready_s)


def measure(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    engines = {"I": runtime("inductor", "/tmp/bvc_I"), "A": runtime("aoti", "/tmp/bvc_A")}
    two = aoti._runners
    aoti._runners = lambda device: 1
    engines["A1"] = runtime("aoti", "/tmp/bvc_A")
    aoti._runners = two
    engines["C"] = runtime("aoti", "/tmp/bvc_C")
    items, audio_s = utterances(engines["I"][1])
    streams = {v: rt.stream() for v, (rt, _) in engines.items()}
    results = alternate(streams, items, audio_s)
    kernels = conv_kernels(streams, items)
    median = {v: statistics.median(r) for v, r in results.items()}
    (out / "next_leads.json").write_text(json.dumps(dict(x_realtime=results, median=median, kernels_us=kernels)))
    for v in streams:
        print(f"{v:3s} median {median[v]:8.1f}x  of inductor {median[v] / median['I']:.4f}  rounds",
              [round(x, 1) for x in results[v]])  # fmt: skip
    for v in streams:
        print(v, kernels[v])


if __name__ == "__main__":
    build(sys.argv[2]) if sys.argv[1] == "build" else measure(Path(sys.argv[2]))
