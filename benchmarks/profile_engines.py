"""Where an engine's GPU time goes: kernel classes and top kernels per forward, for several engines side by side.

    PYTHONPATH=. python benchmarks/profile_engines.py --preset gsv_v4 --precision fp16 --batch 16 \
        --engines inductor "inductor:kernels=traced" [--cache-dir /tmp/bvc] [--out profile.json]

Each engine is built by the runtime builder (batchvoc.runtime.build_runtime, random weights unless --checkpoint)
for the runner's window shape [batch, n_mels, W + 2C], run `--warmup` times, then `--calls` times under
torch.profiler. Per engine: wall ms per forward (CUDA events around the profiled calls), GPU kernel ms per
forward (the sum of kernel durations; wall well above it means the host cannot keep the GPU fed), and kernel
time by class (cuDNN/cuBLAS convolutions and GEMMs, our Triton kernels, Inductor's generated kernels, copies,
other) and the top kernels. An engine spec may carry options as the bench's do ("inductor:antialias=fused1").
Needs a CUDA GPU (`--device cpu` runs the same steps with CPU operator times, to check the script).
"""

from __future__ import annotations

import batchvoc  # noqa: F401  before torch: an aoti package binds to the system C++ runtime (batchvoc/native.py)

# isort: split

import argparse
import json
import sys
from collections import defaultdict

import torch

OURS = ("lrelu_conv", "up_snake", "up_pairs", "down", "antialias", "one_pass", "snake")  # batchvoc's Triton kernels


def kernel_class(name: str) -> str:
    """A kernel's class from its name: conv / gemm (vendor libraries), ours, inductor, copy, other."""
    low = name.lower()
    if low.startswith("triton_"):  # before the conv test: Inductor names its kernels after the ops they fuse
        return "inductor (generated)"
    if any(k in low for k in ("cudnn", "xmma", "implicit_gemm", "conv", "fprop", "dgrad", "nhwc", "nchw")):
        return "ours (Triton)" if any(k in low for k in OURS) else "conv (cuDNN)"
    if "gemm" in low or "cublas" in low or "sm90_" in low:
        return "gemm (cuBLAS)"
    if any(k in low for k in OURS):
        return "ours (Triton)"
    if "copy" in low or "memcpy" in low or "memset" in low or "elementwise" in low:
        return "copy / elementwise (aten)"
    return "other"


def profile_engine(spec: str, args: argparse.Namespace) -> dict:
    from batchvoc.bench import parse_backend, timed
    from batchvoc.runtime import EngineOptions, build_runtime

    backend, options = parse_backend(spec)
    opts = EngineOptions(backend=backend, precision=args.precision, batch=args.batch, cache_dir=args.cache_dir,
                         device=args.device, tunables=options)  # fmt: skip
    rt = build_runtime(args.preset, args.checkpoint, opts)
    batch, length = rt.plan.shape
    device = torch.device(rt.engine.device)
    mel = torch.full((batch, rt.preset.n_mels, length), rt.preset.silence, device=device)
    mel += torch.randn_like(mel)
    valid = torch.tensor([0, length], device=device).repeat(batch, 1)
    cuda = device.type == "cuda"  # a CPU run (--device cpu) only checks the script: operator times, not kernels
    activity = torch.profiler.ProfilerActivity.CUDA if cuda else torch.profiler.ProfilerActivity.CPU
    with torch.inference_mode():
        for _ in range(args.warmup):
            rt.engine(mel, valid)
        with torch.profiler.profile(activities=[activity]) as prof:
            wall, _ = timed(lambda: [rt.engine(mel, valid) for _ in range(args.calls)], device)
    by_name: dict[str, float] = defaultdict(float)
    launches: dict[str, float] = defaultdict(float)
    kind = torch.autograd.DeviceType.CUDA if cuda else torch.autograd.DeviceType.CPU
    for event in prof.events():
        if event.device_type == kind:
            took = event.device_time_total if cuda else event.self_cpu_time_total
            by_name[event.name] += took / 1000 / args.calls  # ms per forward
            launches[event.name] += 1 / args.calls
    classes: dict[str, float] = defaultdict(float)
    for name, ms in by_name.items():
        classes[kernel_class(name)] += ms
    audio_s = batch * length * rt.preset.hop_length / rt.preset.sample_rate
    wall = wall * 1000 / args.calls
    top = sorted(by_name.items(), key=lambda kv: -kv[1])[: args.top]
    return dict(engine=spec, backend=rt.engine.backend, load_path=rt.load_path, shape=[batch, length],
                wall_ms=wall, kernel_ms=sum(by_name.values()), window_audio_s=audio_s,
                classes=dict(sorted(classes.items(), key=lambda kv: -kv[1])),
                launches=round(sum(launches.values())),
                top=[(name, ms, round(launches[name])) for name, ms in top])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="gsv_v4")
    parser.add_argument("--checkpoint", default="random")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--engines", nargs="+", default=["inductor", "inductor:kernels=traced"])
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--device", default="auto", help="auto | cuda | cpu (cpu: a check of the script only)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.device != "cpu" and not torch.cuda.is_available():
        sys.exit("profile_engines.py needs a CUDA GPU (--device cpu checks the script only)")
    rows = [profile_engine(spec, args) for spec in args.engines]
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)
    for r in rows:
        print(f"\n{r['engine']} ({r['load_path']}) {r['shape']}: wall {r['wall_ms']:.2f} ms, kernels "
              f"{r['kernel_ms']:.2f} ms in {r['launches']} launches per forward of "
              f"{r['window_audio_s']:.0f} s of audio")  # fmt: skip
        for name, ms in r["classes"].items():
            print(f"  {name:28} {ms:8.2f} ms  {100 * ms / max(r['kernel_ms'], 1e-9):5.1f}%")
        for name, ms, count in r["top"]:
            print(f"    {ms:8.2f} ms {count:4d}x  {name[:100]}")


if __name__ == "__main__":
    main()
