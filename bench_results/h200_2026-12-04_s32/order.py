"""Session 32, call 1: does the order Inductor's scheduler gives the kernels change gsv_v4's forward? The inductor
engine built once per order (Inductor's peak-memory reordering as is, off, or forced to one of its three sorts),
each order's scheduled nodes recorded, then per-forward times alternating (rounds of 16 forwards).

    PYTHONPATH=. python3 order.py OUT.json [variants: [backend:]order,...] [backend] [preset] [batch] [device]
"""

import batchvoc  # noqa: F401  before torch (native.py)

# isort: split

import json
import os
import statistics
import sys
import time

import torch
import torch._inductor.memory as memory

from batchvoc.bench import timed
from batchvoc.runtime import EngineOptions, build_runtime

ORIGINAL = memory.reorder_for_peak_memory
SORTS = ("lpmf", "bfs", "dfs")
RECORD: dict = {}


def label(node) -> str:
    ir = getattr(node, "node", None)
    kernel = getattr(ir, "python_kernel_name", None) or getattr(ir, "op_overload", None)
    if kernel is not None and "conv" in str(kernel) and "batchvoc" not in str(kernel):
        names = [getattr(i, "get_name", lambda: "?")() for i in getattr(ir, "inputs", [])]
        return "CONV " + " ".join(names[1:2])
    if kernel is not None:
        return "EXT " + str(kernel).split(".")[-2 if str(kernel).endswith("default") else -1]
    return "T"


def describe(node) -> str:
    """Each part of a scheduler node: a user Triton kernel's name, else the ATen ops it came from; its size."""
    from torch._higher_order_ops.triton_kernel_wrap import kernel_side_table

    parts = []
    for sub in node.get_nodes():
        ir = sub.node
        idx = getattr(ir, "kernel_idx", None)
        if idx is not None:
            kernel = kernel_side_table.get_kernel(idx)
            parts.append("K:" + getattr(getattr(kernel, "fn", kernel), "__name__", "?"))
            continue
        ops = {str(getattr(o, "target", o)).replace("aten.", "").split(".")[0] for o in getattr(ir, "origins", ())}
        try:
            size = "x".join(str(int(d)) for d in ir.get_size())
        except Exception:  # noqa: BLE001  scratch probe: sizes are optional
            size = "?"
        origin = getattr(getattr(ir, "origin_node", None), "name", "")
        parts.append(f"{type(ir).__name__}[{size}] {origin}:" + "+".join(sorted(ops))[:160])
    return " | ".join(parts)


def sink_to_first_use(graph) -> None:
    """Move each node (from the last) to just before its earliest user: one order for one graph shape, whatever
    order the tracer left (the post-grad graph is functional here, so a node never moves past a mutation)."""
    nodes = [n for n in graph.nodes if n.op == "call_function"]
    for node in reversed(nodes):
        if not node.users:
            continue
        first = node.next
        users = set(node.users)
        while first not in users and first.op != "output":
            first = first.next
        if first is not node.next:
            first.prepend(node)


def reorder(variant: str, how: str):
    def run(nodes, *args, **kwargs):
        if how == "off":
            order = list(nodes)
        else:
            got, saved = {}, {}
            for name in SORTS:
                fn = saved[name] = getattr(memory, f"topological_sort_{name}")

                def cap(*a, _fn=fn, _name=name, **k):
                    got[_name] = _fn(*a, **k)
                    return got[_name]

                setattr(memory, f"topological_sort_{name}", cap)
            try:
                methods = [getattr(memory, f"topological_sort_{n}") for n in SORTS]
                chosen = ORIGINAL(nodes, *args, methods=methods, **kwargs)
            finally:
                for name, fn in saved.items():
                    setattr(memory, f"topological_sort_{name}", fn)
            picked = [n for n, o in got.items() if [x.get_name() for x in o] == [x.get_name() for x in chosen]]
            RECORD.setdefault(variant, {})["default_picked"] = picked or ["baseline"]
            order = chosen if how == "default" else got[how]
        RECORD.setdefault(variant, {})["order"] = [label(n) for n in order]
        RECORD[variant]["nodes"] = [describe(n) for n in order]
        return order

    return run


def main() -> None:
    out = sys.argv[1]
    variants = (sys.argv[2] if len(sys.argv) > 2 else "default,off,lpmf,bfs,dfs").split(",")
    backend = sys.argv[3] if len(sys.argv) > 3 else "inductor"
    preset = sys.argv[4] if len(sys.argv) > 4 else "gsv_v4"
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 16
    device = sys.argv[6] if len(sys.argv) > 6 else "cuda"
    torch._inductor.config.fx_graph_cache = False
    if os.environ.get("ORDER_AOTI_BENCHMARK"):  # cuDNN's algorithm timing for aoti's build too
        import batchvoc.engines

        batchvoc.engines.cudnn_benchmark = lambda backend: True
    rts = {}
    for v in variants:
        spec, *patches = v.split("@")
        cfg = {k: {"False": False, "True": True}.get(x, x) for k, x in (p.split("=") for p in patches)}
        engine, _, order = spec.rpartition(":")
        engine = engine or backend
        memory.reorder_for_peak_memory = reorder(v, order)
        start = time.perf_counter()
        cache = "/tmp/bvc_order_" + "".join(c if c.isalnum() else "_" for c in v) if engine == "aoti" else "/tmp/bvc"
        tunables = json.loads(os.environ.get("ORDER_TUNABLES", "{}"))
        tunables |= {"kernels": "traced"} if engine == "traced" else {}
        engine = "inductor" if engine == "traced" else engine
        if cfg.pop("sink", None):
            cfg["post_grad_custom_pre_pass"] = sink_to_first_use
        with torch._inductor.config.patch(cfg):
            rts[v] = build_runtime(
                preset, "random", EngineOptions(engine, "fp16", batch, None, device, cache, tunables)
            )
        RECORD.setdefault(v, {})["build_s"] = round(time.perf_counter() - start, 1)
        print(v, "built in", RECORD[v]["build_s"], "s; default picked", RECORD[v].get("default_picked"), flush=True)
    memory.reorder_for_peak_memory = ORIGINAL
    rt0 = rts[variants[0]]
    b, length = rt0.plan.shape
    mel = torch.randn(b, rt0.preset.n_mels, length, device=device) + rt0.preset.silence
    valid = torch.tensor([0, length], device=device).repeat(b, 1)
    modes = os.environ.get("ORDER_CUDNN", "as-built").split(",")
    rounds = 8 if device == "cuda" else 1
    n = 16 if device == "cuda" else 1
    with torch.inference_mode():
        ref = rts[variants[0]].engine(mel, valid).float()
        for k, rt in rts.items():
            y = rt.engine(mel, valid).float()
            RECORD[k]["rel_l2"] = float((y - ref).norm() / ref.norm())
        for mode in modes:
            if mode != "as-built":  # cuDNN's algorithm timing for every engine, then a first call per engine
                torch.backends.cudnn.benchmark = mode == "benchmark"
                for k, rt in rts.items():
                    start = time.perf_counter()
                    rt.engine(mel, valid)
                    torch.cuda.synchronize() if device == "cuda" else None
                    RECORD[k][f"first_call_s_{mode}"] = round(time.perf_counter() - start, 3)
            print("cudnn", mode, torch.backends.cudnn.benchmark, flush=True)
            times = {k: [] for k in rts}
            for r in range(rounds):
                for k in list(rts)[:: 1 if r % 2 == 0 else -1]:
                    rt = rts[k]
                    fn = lambda rt=rt: [rt.engine(mel, valid) for _ in range(n)]  # noqa: E731
                    times[k].append(timed(fn, torch.device(device))[0] * 1000 / n)
                print(r, {k: round(v[-1], 3) for k, v in times.items()}, flush=True)
            for k in rts:
                RECORD[k][f"ms_{mode}"] = times[k]
                RECORD[k][f"median_ms_{mode}"] = statistics.median(times[k])
    json.dump(RECORD, open(out, "w"), indent=1)
    print("variant  cudnn  median_ms  vs_first  rel_l2  first_call_s  picked")
    for mode in modes:
        base = RECORD[variants[0]][f"median_ms_{mode}"]
        for k in rts:
            r = RECORD[k]
            ms = r[f"median_ms_{mode}"]
            print(
                f"{k:8s} {mode} {ms:9.3f} {ms / base:8.4f} {r['rel_l2']:.1e} {r.get(f'first_call_s_{mode}')} "
                f"{r.get('default_picked')}"
            )


if __name__ == "__main__":
    main()
