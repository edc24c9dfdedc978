"""Session 38: is the aoti package's ~2-3% in the same kernels run slower (per kernel name), and does pointing the
package's constants at fresh caching-allocator tensors (user-managed, `load_constants`) close it?

    PYTHONPATH=.:bench_results/h200_2026-12-04_s34:bench_results/h200_2026-12-05_s37 python3 gap2.py OUT
"""

import batchvoc  # noqa: F401  before torch (native.py)

# isort: split

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import gap
import torch
from ab_launch import alternate, utterances
from torch.profiler import ProfilerActivity, profile

from batchvoc.engines import aoti
from batchvoc.engines.base import warmup_input
from batchvoc.stream import audio_of

NETS = []
_compile = aoti._export_and_compile
aoti._export_and_compile = lambda net, *a, **k: NETS.append(net) or _compile(net, *a, **k)


def by_name(stream, items) -> dict:
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        list(audio_of(stream, items))
        torch.cuda.synchronize()
    total, count = defaultdict(float), defaultdict(int)
    for e in prof.profiler.kineto_results.events():
        if e.device_type() == torch.autograd.DeviceType.CUDA and e.duration_ns() > 0:
            total[e.name()[:90]] += e.duration_ns() / 1e3 / gap.FORWARDS
            count[e.name()[:90]] += 1
    return {n: (round(t, 1), count[n]) for n, t in total.items()}


def diff(a: dict, b: dict, top: int = 18) -> None:
    names = sorted(set(a) | set(b), key=lambda n: -abs(b.get(n, (0, 0))[0] - a.get(n, (0, 0))[0]))
    for n in names[:top]:
        print(f"  {a.get(n, (0, 0))[0]:8.1f} {a.get(n, (0, 0))[1]:4d}  {b.get(n, (0, 0))[0]:8.1f} "
              f"{b.get(n, (0, 0))[1]:4d}  {n}")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    engines = {"I": gap.runtime("inductor"), "A": gap.runtime("aoti")}
    items, audio_s = utterances(engines["I"][1])
    streams = {v: e[0].stream() for v, e in engines.items()}
    res = alternate(streams, items, audio_s, rounds=3)
    names = {v: by_name(s, items) for v, s in streams.items()}
    print("ratio before", round(statistics.median(res["A"]) / statistics.median(res["I"]), 4), flush=True)
    print("  I us/fwd  n   A us/fwd  n   kernel (largest differences)")
    diff(names["I"], names["A"])
    loader = gap.LOADED[-1].loader
    fqns = loader.get_constant_fqns()
    net = NETS[-1]
    state = {**dict(net.named_parameters()), **dict(net.named_buffers())}
    found = {f: state[f].detach().clone() for f in fqns if f in state}
    missing = [f for f in fqns if f not in state]
    print("constants", len(fqns), "found in the net", len(found), "missing e.g.", missing[:5])
    mel, valid = warmup_input(engines["A"][1].n_mels, engines["A"][2], engines["A"][1].silence, torch.float16,
                              torch.device("cuda"))  # fmt: skip
    with torch.inference_mode():
        before = gap.LOADED[-1](mel, valid).clone()
        loader.load_constants(found, False, False, True)
        after = gap.LOADED[-1](mel, valid).clone()
        torch.cuda.synchronize()
    print("user-managed constants: max abs diff", float((after - before).abs().max()), flush=True)
    res2 = alternate(streams, items, audio_s, rounds=3)
    print("ratio after", round(statistics.median(res2["A"]) / statistics.median(res2["I"]), 4), flush=True)
    a2 = by_name(streams["A"], items)
    diff(names["A"], a2, top=8)
    (out / "gap2.json").write_text(json.dumps(dict(before=res, after=res2, names=names, a2=a2), indent=1))
    for label, r in (("before", res), ("after", res2)):
        print(label, {v: round(statistics.median(x), 1) for v, x in r.items()})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
