"""Scratch (session 29): log every full garbage collection (and any collection over 5 ms) with its duration, to
$GCLOG, in every Python process that has this folder on PYTHONPATH. Not part of batchvoc."""
import gc
import os
import time

_path = os.environ.get("GCLOG")
_start = [0.0]


def _callback(phase, info):
    if phase == "start":
        _start[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _start[0]) * 1000
    if info["generation"] == 2 or ms > 5:
        line = (f"{time.time():.3f} pid {os.getpid()} gen {info['generation']} {ms:.1f} ms "
                f"collected {info['collected']} frozen {gc.get_freeze_count()}")
        if info["generation"] == 2 and ms > 40 and os.environ.get("GCTYPES"):
            import collections

            alive = gc.get_objects(2)
            top = collections.Counter(type(o).__name__ for o in alive).most_common(6)
            line += f" gen2 {len(alive)}: " + ", ".join(f"{k} {v}" for k, v in top)
        with open(_path, "a") as f:
            f.write(line + "\n")


if _path:
    gc.callbacks.append(_callback)
