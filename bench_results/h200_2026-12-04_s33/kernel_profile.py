"""Session 33: where aoti's ~2% on gsv_v4 goes. Each engine's forwards under torch.profiler (CUPTI sees every kernel,
whoever launches it); per engine: GPU span per forward, summed kernel time, the gaps between kernels, kernel time
per class and per name, and the host calls (launches, mallocs, syncs) counted. Chrome traces are kept in OUT.

    PYTHONPATH=. python3 kernel_profile.py OUT_DIR [preset] [batch] [forwards]
"""

import batchvoc  # noqa: F401  before torch (native.py)

# isort: split

import collections
import json
import re
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from batchvoc.engines.base import warmup_input
from batchvoc.models import load_vocoder
from batchvoc.runtime import EngineOptions, build_runtime


def kind(name: str) -> str:
    if name.startswith("triton_"):
        return "inductor triton"
    if re.search(r"cudnn|xmma|implicit|conv|sm90|cutlass|gemm", name, re.I):
        return "cudnn/cublas"
    return "other (ours, copies)"


def summarize(trace: Path, forwards: int) -> dict:
    events = json.loads(trace.read_text())["traceEvents"]
    gpu = sorted((e for e in events if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")), key=lambda e: e["ts"])
    host = collections.Counter(e["name"] for e in events if e.get("cat") in ("cuda_runtime", "cuda_driver"))
    span = gpu[-1]["ts"] + gpu[-1]["dur"] - gpu[0]["ts"]
    busy = sum(e["dur"] for e in gpu)
    gaps, end = [], gpu[0]["ts"]
    for e in gpu:
        gaps.append(max(0.0, e["ts"] - end))
        end = max(end, e["ts"] + e["dur"])
    by_name = collections.defaultdict(float)
    by_kind = collections.defaultdict(float)
    for e in gpu:
        name = e["name"] if e["cat"] == "kernel" else e["cat"]
        by_name[re.sub(r"_\d+$", "", name)[:90]] += e["dur"] / forwards
        by_kind[kind(name) if e["cat"] == "kernel" else e["cat"]] += e["dur"] / forwards
    big = sorted(gaps, reverse=True)[:5]
    return dict(span_ms=span / forwards / 1000, busy_ms=busy / forwards / 1000, gaps_ms=sum(gaps) / forwards / 1000,
                launches=len(gpu) / forwards, biggest_gaps_us=[round(g, 1) for g in big],
                by_kind={k: round(v / 1000, 3) for k, v in by_kind.items()},
                by_name={k: round(v, 1) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])},
                host={k: round(v / forwards, 1) for k, v in host.most_common(12)})


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    preset = sys.argv[2] if len(sys.argv) > 2 else "gsv_v4"
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    forwards = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    _, spec = load_vocoder(preset, "random")
    results = {}
    for backend in ("inductor", "aoti"):
        rt = build_runtime(preset, "random", EngineOptions(backend, "fp16", batch, None, "cuda", None, {}))
        mel, valid = warmup_input(spec.n_mels, rt.plan.shape, spec.silence, torch.float32, torch.device("cuda"))
        with torch.inference_mode():
            for _ in range(3):
                rt.engine(mel, valid)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(forwards):
                    rt.engine(mel, valid)
                torch.cuda.synchronize()
        trace = out / f"{backend}.json"
        prof.export_chrome_trace(str(trace))
        results[backend] = summarize(trace, forwards)
    (out / "summary.json").write_text(json.dumps(results, indent=1))
    a, i = results["aoti"], results["inductor"]
    print(f"{'':22s} {'inductor':>10s} {'aoti':>10s}")
    for key in ("span_ms", "busy_ms", "gaps_ms", "launches"):
        print(f"{key:22s} {i[key]:10.3f} {a[key]:10.3f}")
    for k in sorted(set(a["by_kind"]) | set(i["by_kind"])):
        print(f"{k:22s} {i['by_kind'].get(k, 0):10.3f} {a['by_kind'].get(k, 0):10.3f}")
    print("biggest gaps us", i["biggest_gaps_us"], a["biggest_gaps_us"])
    names = set(a["by_name"]) | set(i["by_name"])
    diffs = sorted(names, key=lambda n: -abs(a["by_name"].get(n, 0) - i["by_name"].get(n, 0)))[:25]
    print("per name, us per forward (inductor, aoti):")
    for n in diffs:
        print(f"  {i['by_name'].get(n, 0):9.1f} {a['by_name'].get(n, 0):9.1f}  {n}")
    print("host inductor", i["host"])
    print("host aoti", a["host"])


if __name__ == "__main__":
    main()
