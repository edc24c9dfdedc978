"""Engine ready time in fresh processes: how long a worker takes from its start to a warmed-up engine.

    PYTHONPATH=. python benchmarks/ready.py --presets gsv_v4 bigvgan_v2_24khz_100band_256x --backends aoti inductor \
        --precision fp16 --repeats 2 --cache-dir /tmp/bvc [--out ready.json] [--profile]

For each preset and backend, `repeats` new Python processes each call `batchvoc.runtime.build_runtime` with the same
engine.cache_dir (the first may build packages / fill compile caches; the later ones find them warm) and report
`ready_s` (the builder's call to a warmed-up engine, checkpoint loading included), `load_path` (built | loaded) and
`process_s` (interpreter start to ready, imports included). Public APIs only; prints a table last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = """
import cProfile, io, json, pstats, sys, time
started = time.perf_counter()
from batchvoc.bytecode import use_bytecode_cache
use_bytecode_cache()  # as `python -m batchvoc` does for a job's processes
from batchvoc.runtime import EngineOptions, build_runtime
preset, checkpoint, backend, precision, batch, cache_dir, profile = sys.argv[1:8]
options = EngineOptions(backend=backend, precision=precision, batch=int(batch), cache_dir=cache_dir)
profiler = cProfile.Profile() if profile == "1" else None
if profiler:
    profiler.enable()
rt = build_runtime(preset, checkpoint, options)
if profiler:
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
    print(text.getvalue(), file=sys.stderr)
print("READY " + json.dumps(dict(ready_s=rt.ready_s, load_path=rt.load_path, backend=rt.engine.backend,
      precision=rt.engine.precision, shape=list(rt.plan.shape), build_s=rt.engine.build_s,
      imports_s=time.perf_counter() - started - rt.ready_s)))
"""


def one_process(preset: str, checkpoint: str, backend: str, precision: str, batch: int, cache_dir: str,
                profile: bool = False) -> dict:  # fmt: skip
    """Run one fresh process; its READY line as a dict, plus process_s (shell-side wall clock). profile: the
    builder's call under cProfile, its top 30 by cumulative time printed to stderr."""
    start = time.perf_counter()
    args = [preset, checkpoint, backend, precision, str(batch), cache_dir, "1" if profile else "0"]
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if profile:
        print(done.stderr[-12000:], file=sys.stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith("READY ")]
    if done.returncode or not lines:
        return dict(error=(done.stderr or done.stdout)[-2000:], process_s=wall)
    return dict(json.loads(lines[-1][6:]), process_s=wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["gsv_v4"])
    parser.add_argument("--backends", nargs="+", default=["aoti"])
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--checkpoint", default="random")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--out", default=None)
    parser.add_argument("--profile", action="store_true", help="cProfile each process's build (stderr)")
    args = parser.parse_args()
    rows = []
    for preset in args.presets:
        for backend in args.backends:
            for run in range(args.repeats):
                result = one_process(preset, args.checkpoint, backend, args.precision, args.batch, args.cache_dir,
                                     args.profile)  # fmt: skip
                rows.append(dict(preset=preset, requested=backend, run=run, **result))
                print(json.dumps(rows[-1]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)
    print(f"{'preset':32} {'backend':9} {'run':>3} {'path':7} {'ready_s':>8} {'process_s':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['preset']:32} {r['requested']:9} {r['run']:>3} failed: {r['error'].splitlines()[-1][:80]}")
        else:
            print(f"{r['preset']:32} {r['backend']:9} {r['run']:>3} {r['load_path']:7} {r['ready_s']:8.2f} "
                  f"{r['process_s']:9.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
