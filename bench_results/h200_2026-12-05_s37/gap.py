"""Session 37: where the aoti package's last ~2% goes in the bench's stream (every GPU kernel, by class, and the
idle time between them), and what a CUDA-graph capture of one package call does.

    PYTHONPATH=.:bench_results/h200_2026-12-04_s34 python3 gap.py profile OUT   # inductor and aoti, batch 16
    PYTHONPATH=... python3 gap.py capture global|relaxed                       # the package built by `profile`
"""

import batchvoc  # noqa: F401  before torch (native.py)

# isort: split

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import torch
from ab_launch import alternate, utterances
from torch.profiler import ProfilerActivity, profile

from batchvoc.device_defaults import default_row_length
from batchvoc.engines import aoti
from batchvoc.engines.base import warmup_input
from batchvoc.models import load_vocoder
from batchvoc.runtime import EngineOptions, assemble, plan_chunks
from batchvoc.stream import audio_of

BATCH, FORWARDS = 16, 16
LOADED = []
_load = aoti._load
aoti._load = lambda path, device: LOADED.append(_load(path, device)) or LOADED[-1]


def runtime(backend: str):
    model, preset = load_vocoder("gsv_v4", "random")
    plan = plan_chunks(model, preset, 1, None, default_row_length(torch.device("cuda"), preset.frame_rate))
    options = EngineOptions(backend, "fp16", BATCH, plan.chunk_frames, "cuda", "/tmp/bvc", {})
    rt = assemble(model, preset, options, shape=(BATCH, plan.chunk_frames + 2 * plan.context))
    print(backend, rt.engine.load_path, round(rt.ready_s, 1), flush=True)
    return rt, preset, (BATCH, plan.chunk_frames + 2 * plan.context)


def kind(name: str) -> str:
    for key in ("lrelu_conv_tma", "lrelu_conv", "Memcpy", "Memset"):
        if key in name:
            return key
    if "sm90" in name or "cudnn" in name or "xmma" in name:
        return "cudnn"
    return "triton_other" if name.startswith("triton") else "other"


def kernels(stream, items) -> dict:
    """One profiled stream run: GPU time per forward by kernel class, launches, busy and idle time (us)."""
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        list(audio_of(stream, items))
        torch.cuda.synchronize()
    spans, by_kind, count = [], defaultdict(float), defaultdict(int)
    for e in prof.profiler.kineto_results.events():
        if e.device_type() != torch.autograd.DeviceType.CUDA or e.duration_ns() <= 0:
            continue
        spans.append((e.start_ns(), e.end_ns()))
        by_kind[kind(e.name())] += e.duration_ns() / 1e3 / FORWARDS
        count[kind(e.name())] += 1
    spans.sort()
    busy, end = 0, spans[0][0]
    for s, t in spans:
        busy += max(0, t - max(s, end))
        end = max(end, t)
    span_us = (spans[-1][1] - spans[0][0]) / 1e3 / FORWARDS
    return dict(per_class_us={k: round(v, 1) for k, v in sorted(by_kind.items())}, launches=dict(count),
                busy_us=round(busy / 1e3 / FORWARDS, 1), span_us=round(span_us, 1),
                idle_us=round(span_us - busy / 1e3 / FORWARDS, 1))  # fmt: skip


def do_profile(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    engines = {"I": runtime("inductor"), "A": runtime("aoti")}
    items, audio_s = utterances(engines["I"][1])
    streams = {v: e[0].stream() for v, e in engines.items()}
    results = alternate(streams, items, audio_s, rounds=4)
    median = {v: statistics.median(r) for v, r in results.items()}
    profiles = {v: kernels(s, items) for v, s in streams.items()}
    for v in streams:
        torch.cuda.reset_peak_memory_stats()
        list(audio_of(streams[v], items[:64]))
        profiles[v]["peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    (out / "gap.json").write_text(json.dumps(dict(x_realtime=results, median=median, profiles=profiles), indent=1))
    for v in streams:
        print(f"{v} median {median[v]:8.1f}x  of inductor {median[v] / median['I']:.4f}",
              [round(x, 1) for x in results[v]])  # fmt: skip
    for v, p in profiles.items():
        print(v, json.dumps(p))


def do_capture(mode: str) -> None:
    rt, preset, shape = runtime("aoti")
    package = LOADED[-1]
    mel, valid = warmup_input(preset.n_mels, shape, preset.silence, torch.float16, torch.device("cuda"))
    with torch.inference_mode():
        plain = package(mel, valid).clone()
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, capture_error_mode=mode):
                audio = package(mel, valid)
        except Exception as err:  # what the package does that a capture refuses
            print("capture failed:", type(err).__name__, str(err)[:600], flush=True)
            return
        print("captured", flush=True)
        for i in range(3):
            graph.replay()
            torch.cuda.synchronize()
            print("replay", i, "max abs diff", float((audio - plain).abs().max()), flush=True)


if __name__ == "__main__":
    do_profile(Path(sys.argv[2])) if sys.argv[1] == "profile" else do_capture(sys.argv[2])
