"""Session 36: the aoti engine with each package call replayed as a CUDA graph (aoti.CUDA_GRAPHS) against the plain
package and the inductor engine, batch 16 and batch 1, alternated in one process; parity of graphed vs plain.

    git apply bench_results/h200_2026-12-05_s36/aoti_graphs.patch   # aoti.CUDA_GRAPHS and _Graphed (not landed)
    PYTHONPATH=.:bench_results/h200_2026-12-04_s34 python3 aoti_graphs.py OUT
"""

import batchvoc  # noqa: F401  before torch (native.py)

# isort: split

import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from ab_launch import alternate, utterances

from batchvoc.device_defaults import default_row_length
from batchvoc.engines import aoti
from batchvoc.models import load_vocoder
from batchvoc.runtime import EngineOptions, assemble, plan_chunks
from batchvoc.stream import audio_of


def runtime(backend: str, batch: int, graphs: bool):
    aoti.CUDA_GRAPHS = graphs
    model, preset = load_vocoder("gsv_v4", "random")
    plan = plan_chunks(model, preset, 1, None, default_row_length(torch.device("cuda"), preset.frame_rate))
    options = EngineOptions(backend, "fp16", batch, plan.chunk_frames, "cuda", "/tmp/bvc", {})
    rt = assemble(model, preset, options, shape=(batch, plan.chunk_frames + 2 * plan.context))
    print(backend, batch, graphs, rt.engine.load_path, round(rt.ready_s, 1), flush=True)
    return rt, preset


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for batch in (16, 1):
        engines = {"I": runtime("inductor", batch, False), "A": runtime("aoti", batch, False),
                   "G": runtime("aoti", batch, True)}  # fmt: skip
        items, audio_s = utterances(engines["I"][1])
        streams = {v: rt.stream() for v, (rt, _) in engines.items()}
        plain = dict(audio_of(streams["A"], items[:32]))
        graphed = dict(audio_of(streams["G"], items[:32]))
        diff = max(float(np.abs(plain[k] - graphed[k]).max()) for k in plain)
        results = alternate(streams, items, audio_s, rounds=4)
        median = {v: statistics.median(r) for v, r in results.items()}
        report[batch] = dict(x_realtime=results, median=median, max_abs_diff_graphed_vs_plain=diff,
                             mem_gb=torch.cuda.max_memory_allocated() / 1e9)  # fmt: skip
        for v in streams:
            print(f"B={batch:2d} {v} median {median[v]:8.1f}x  of inductor {median[v] / median['I']:.4f}",
                  [round(x, 1) for x in results[v]], flush=True)  # fmt: skip
        print(f"B={batch} graphed vs plain max abs diff {diff:.3g}", flush=True)
        del engines, streams
        torch.cuda.empty_cache()
    (out / "aoti_graphs.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
