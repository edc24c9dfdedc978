"""Diagnostic: every Triton compile in every process (Inductor's workers too) appends one JSON line to $DIAG_LOG."""
import json
import os
import time

_log = os.environ.get("DIAG_LOG")
if _log:
    try:
        from triton import knobs

        def _listener(*, src, metadata, metadata_group, times, cache_hit):
            fn = getattr(src, "fn", None)
            name = getattr(fn, "__name__", None) or getattr(getattr(fn, "fn", None), "__name__", "?")
            names = getattr(fn, "arg_names", None) or []
            consts = {(names[k[0]] if isinstance(k, tuple) and k and k[0] < len(names) else str(k)): repr(v)[:40]
                      for k, v in (getattr(src, "constants", None) or {}).items()}
            line = dict(pid=os.getpid(), end=time.time(), name=name, hit=cache_hit, total_ms=times.total / 1e3,
                        stages={k: v / 1e3 for k, v in times.lowering_stages}, ir_ms=times.ir_initialization / 1e3,
                        consts=consts, n_regs=metadata.get("n_regs") if isinstance(metadata, dict) else None)
            with open(_log, "a") as f:
                f.write(json.dumps(line) + "\n")

        knobs.compilation.listener = _listener
    except Exception as e:  # noqa: BLE001
        with open(_log, "a") as f:
            f.write(json.dumps(dict(pid=os.getpid(), error=repr(e))) + "\n")
