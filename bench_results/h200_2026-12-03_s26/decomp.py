"""Where the issue's gsv_v4 bench time goes (session 26, call 1): the engine's forward alone against the bench's
stream, GPU busy time and gaps inside the stream (torch.profiler), and kernel time per forward for two precisions.

    PYTHONPATH=. python3 decomp.py fp16,bf16 [ENGINE_OPTIONS key=value,...] [OUT.json]

The bench's inputs (256 utterances x 1,000 frames, batch 16, inductor; batchvoc.bench.run_bench).
"""

import json
import statistics
import sys
from collections import defaultdict

import numpy as np
import torch

from batchvoc.bench import timed
from batchvoc.device_defaults import default_row_length
from batchvoc.hostmem import retain_freed_memory
from batchvoc.models import load_vocoder
from batchvoc.runtime import EngineOptions, assemble, plan_chunks
from batchvoc.stream import audio_of


def gaps_and_busy(events) -> tuple[float, list[tuple[float, str]], float, float]:
    """(busy us, [(gap us, next kernel)], first start, last end) over the CUDA events' time ranges."""
    spans = sorted((e.time_range.start, e.time_range.end, e.name) for e in events)
    busy, cur_s, cur_e, gaps = 0.0, None, None, []
    for s, e, n in spans:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                busy += cur_e - cur_s
                gaps.append((s - cur_e, n))
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    busy += cur_e - cur_s
    return busy, sorted(gaps, reverse=True), spans[0][0], max(e for _, e, _ in spans)


def measure(model, preset, precision: str, tunables: dict, items, window: int, context: int) -> dict:
    dev = torch.device("cuda")
    options = EngineOptions("inductor", precision, 16, window, "cuda", "/tmp/bvc", tunables)
    rt = assemble(model, preset, options, shape=(16, window + 2 * context))
    stream = rt.stream(round_trip=False)

    def run():
        return [a for _, a in audio_of(stream, items)]

    for _ in range(2):
        run()
    stream_s = statistics.median(timed(run, dev)[0] for _ in range(10))
    length = window + 2 * context
    mel = torch.full((16, preset.n_mels, length), preset.silence, device=dev) + torch.randn(16, preset.n_mels, length,
                                                                                            device=dev)  # fmt: skip
    valid = torch.tensor([0, length], device=dev).repeat(16, 1)

    def forwards():
        return [rt.engine(mel, valid) for _ in range(16)]

    with torch.inference_mode():
        forwards()
        forward_s = statistics.median(timed(forwards, dev)[0] for _ in range(5)) / 16
    activities = [torch.profiler.ProfilerActivity.CUDA, torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities) as prof:
        wall, _ = timed(run, dev)
    events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy, gaps, first, last = gaps_and_busy(events)
    by, count = defaultdict(float), defaultdict(int)
    for e in events:
        by[e.name] += e.device_time_total / 1000 / 16
        count[e.name] += 1
    return dict(stream_ms=stream_s * 1000, x_rt=len(items) * 10 / stream_s, fwd_ms=forward_s * 1000,
                prof_wall_ms=wall * 1000, gpu_span_ms=(last - first) / 1000, gpu_busy_ms=busy / 1000,
                big_gaps=[(g / 1000, n[:60]) for g, n in gaps[:12]], gaps_total_ms=sum(g for g, _ in gaps) / 1000,
                n_gaps_over_20us=sum(1 for g, _ in gaps if g > 20),
                kernels={k: (v, count[k] // 16) for k, v in sorted(by.items(), key=lambda kv: -kv[1])})  # fmt: skip


def main() -> None:
    precisions = sys.argv[1].split(",")
    tunables = dict(kv.split("=") for kv in sys.argv[2].split(",")) if len(sys.argv) > 2 and sys.argv[2] else {}
    out = sys.argv[3] if len(sys.argv) > 3 else "/tmp/decomp.json"
    retain_freed_memory()
    model, preset = load_vocoder("gsv_v4", "random", None)
    plan = plan_chunks(model, preset, 1, None, default_row_length(torch.device("cuda")))
    rng = np.random.default_rng(0)
    items = [(f"i{i}", (rng.standard_normal((preset.n_mels, 1000)) * 2 - 6).astype(np.float32)) for i in range(256)]
    res = {}
    for p in precisions:
        r = res[p] = measure(model, preset, p, tunables, items, plan.chunk_frames, plan.context)
        print(
            f"{p}: stream {r['stream_ms']:.1f} ms ({r['x_rt']:.1f}x), fwd {r['fwd_ms']:.2f} ms x16 = "
            f"{16 * r['fwd_ms']:.1f}, prof wall {r['prof_wall_ms']:.1f}, gpu span {r['gpu_span_ms']:.1f}, "
            f"busy {r['gpu_busy_ms']:.1f}, gaps {r['gaps_total_ms']:.2f} ms ({r['n_gaps_over_20us']} >20us)"
        )
        print("  biggest gaps (ms, next kernel):", r["big_gaps"][:8])
        torch.cuda.empty_cache()
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    if len(precisions) == 2:
        a, b = (res[p]["kernels"] for p in precisions)
        zero = (0.0, 0)
        print(f"kernel ms per forward, {precisions[0]} vs {precisions[1]} (largest differences):")
        for n in sorted(set(a) | set(b), key=lambda n: -abs(a.get(n, zero)[0] - b.get(n, zero)[0]))[:25]:
            (ma, ca), (mb, cb) = a.get(n, zero), b.get(n, zero)
            print(f"  {ma:7.3f} {mb:7.3f} x{ca}/{cb}  {n[:110]}")


if __name__ == "__main__":
    main()
