"""Session 31: aoti's kernels against the traced inductor engine's, launch by launch (same kernels compiled the
same way), and the SM clock and power while each runs alone (nvidia-smi sampled every 50 ms, rounds alternating).

    PYTHONPATH=. python3 launches.py OUT.json
"""

import batchvoc  # noqa: F401  before torch (native.py)

# isort: split

import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict

import torch

from batchvoc.runtime import EngineOptions, build_runtime

SPECS = {"traced": ("inductor", {"kernels": "traced"}), "aoti": ("aoti", {})}


def main():
    out = sys.argv[1]
    rts = {}
    for name, (backend, opts) in SPECS.items():
        rts[name] = build_runtime(
            "gsv_v4", "random", EngineOptions(backend, "fp16", 16, None, "cuda", "/tmp/bvc", opts)
        )
        print(name, "ready", flush=True)
    rt0 = next(iter(rts.values()))
    b, length = rt0.plan.shape
    mel = torch.full((b, rt0.preset.n_mels, length), rt0.preset.silence, device="cuda") + torch.randn(
        b, rt0.preset.n_mels, length, device="cuda"
    )
    valid = torch.tensor([0, length], device="cuda").repeat(b, 1)
    res, sequences = {}, {}
    with torch.inference_mode():
        for name, rt in rts.items():
            for _ in range(3):
                rt.engine(mel, valid)
            torch.cuda.synchronize()
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                for _ in range(8):
                    rt.engine(mel, valid)
                torch.cuda.synchronize()
            ev = sorted(
                (e.time_range.start, e.device_time_total, e.name)
                for e in prof.events()
                if e.device_type == torch.autograd.DeviceType.CUDA
            )
            per = len(ev) // 8
            seq = defaultdict(list)  # (class, index within forward) -> durations
            for f in range(8):
                counts = defaultdict(int)
                for _, d, n in ev[f * per : (f + 1) * per]:
                    c = "cudnn" if "xmma" in n else n if n in ("lrelu_conv_tma", "lrelu_conv") else None
                    if c:
                        seq[(c, counts[c])].append(d)
                        counts[c] += 1
            res[name] = {f"{c}#{i}": statistics.median(v) for (c, i), v in seq.items()}
            sequences[name] = [(n[:90], d) for _, d, n in ev[4 * per : 5 * per]]
            print(name, "kernels per forward", per, flush=True)
        # clocks: each engine alone for ~2.5 s, alternating, 4 rounds
        smi = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=timestamp,clocks.sm,power.draw", "--format=csv,noheader,nounits", "-lms", "50"],
            stdout=subprocess.PIPE,
            text=True,
        )
        phases = []
        time.sleep(1.0)
        for _ in range(4):
            for name, rt in rts.items():
                t0 = time.time()
                n = 0
                while time.time() - t0 < 2.5:
                    rt.engine(mel, valid)
                    n += 1
                    if n % 8 == 0:
                        torch.cuda.synchronize()
                torch.cuda.synchronize()
                phases.append((name, t0, time.time(), n))
        smi.terminate()
        samples = []
        for line in smi.stdout.read().splitlines():
            try:
                ts, clk, pw = [x.strip() for x in line.split(",")]
                t = time.mktime(time.strptime(ts.split(".")[0], "%Y/%m/%d %H:%M:%S")) + float("0." + ts.split(".")[1])
                samples.append((t, float(clk), float(pw)))
            except Exception:
                pass
    clocks = defaultdict(lambda: dict(clk=[], pw=[], fwd_ms=[]))
    for name, t0, t1, n in phases:
        s = [(c, p) for t, c, p in samples if t0 + 0.3 < t < t1 - 0.1]
        clocks[name]["clk"] += [c for c, _ in s]
        clocks[name]["pw"] += [p for _, p in s]
        clocks[name]["fwd_ms"].append((t1 - t0) * 1000 / n)
    summ = {
        k: dict(
            clk=statistics.mean(v["clk"]) if v["clk"] else None,
            pw=statistics.mean(v["pw"]) if v["pw"] else None,
            fwd_ms=statistics.median(v["fwd_ms"]),
            n=len(v["clk"]),
        )
        for k, v in clocks.items()
    }
    json.dump(dict(launches=res, clocks=summ, phases=phases, sequences=sequences), open(out, "w"), indent=1)
    print("clocks:", json.dumps(summ))
    a, t = res["aoti"], res["traced"]
    print("launch            traced_us   aoti_us  ratio")
    tot = defaultdict(lambda: [0.0, 0.0])
    for k in sorted(set(a) & set(t), key=lambda k: (k.split("#")[0], int(k.split("#")[1]))):
        print(f"{k:18s} {t[k]:9.1f} {a[k]:9.1f} {a[k] / t[k]:6.3f}")
        tot[k.split("#")[0]][0] += t[k]
        tot[k.split("#")[0]][1] += a[k]
    print({k: (round(v[0]), round(v[1]), round(v[1] / v[0], 3)) for k, v in tot.items()})
    print("only traced:", sorted(set(t) - set(a)), "only aoti:", sorted(set(a) - set(t)))


if __name__ == "__main__":
    main()
