"""python -m batchvoc.build job=NAME [key=value ...] [--check]: build the engine packages a job will need, here.

Like `trtexec` for TensorRT engines: run it on the machine (or image) the job will run on, with the job's own
overrides, to fill engine.cache_dir before a large job, so that every actor loads instead of compiling. It builds
the job's engine exactly as a worker does (batchvoc.runtime) and prints, per package, the backend, precision,
shape, device, key and path, and whether it was built now or was already there (loaded).

    python -m batchvoc.build job=v4_fp16 model.checkpoint=/ckpt/vocoder.pth engine.backend=aoti
    python -m batchvoc.build job=hifigan_v1 model.checkpoint=pretrained engine.backend=aoti --check

--check builds nothing: it lists the packages and whether each is present (exit 2 when any is missing).
On an image that ships no bytecode (batchvoc/bytecode.py) the command then warms the bytecode cache for a job's
start (batchvoc/warm_start.py: a local Ray and one actor, a few seconds).
Backends: aoti writes packages (<cache_dir>/aoti/<key>.pt2); inductor fills Inductor's caches under
<cache_dir>/inductor (a warm start still traces the model); tensorrt writes engines (<cache_dir>/tensorrt);
eager has nothing to build. Exit codes: 0 done, 1 configuration error or a package auto could not build (its
error logged; a job's workers then go on with inductor), 2 packages missing (--check).
"""

from __future__ import annotations

from batchvoc.bytecode import use_bytecode_cache

if __name__ == "__main__":  # before torch: the command-line run, on an image without bytecode (bytecode.py)
    BYTECODE = use_bytecode_cache()  # None where Python's own setting stands

import logging
import sys
from typing import Any

import torch

from batchvoc.errors import ConfigError, reader_gone

log = logging.getLogger("batchvoc.build")


def build_devices() -> list[str]:
    """One device per distinct GPU model on this machine (packages are per GPU model), else ["cpu"]."""
    if not torch.cuda.is_available():
        return ["cpu"]
    seen: dict[str, str] = {}
    for index in range(torch.cuda.device_count()):
        seen.setdefault(torch.cuda.get_device_name(index), f"cuda:{index}")
    return list(seen.values())


def build(settings: Any, check_only: bool = False) -> list[dict[str, Any]]:
    """Build (or, check_only, look for) the job's packages on every build_devices() device; one dict per package:
    backend, precision, shape, device, key, path, state (built | loaded | present | missing | nothing to build |
    failed ...)."""
    from batchvoc.engines import choose_backend
    from batchvoc.engines.aoti import plan_packages
    from batchvoc.models import load_vocoder
    from batchvoc.runtime import EngineOptions, assemble, backend_options, plan_for

    model, preset = load_vocoder(settings.preset, settings.checkpoint, settings.hparams)
    rows = []
    for device in build_devices():
        options = EngineOptions.from_settings(settings, device)
        options.check()
        backend = options.backend if options.backend != "auto" else choose_backend(device)[0]
        plan = plan_for(model, preset, options)
        base = dict(preset=preset.name, backend=backend, shape=plan.shape, device=_device_name(device))
        if backend == "aoti":
            tunables = backend_options("aoti", options.tunables)
            packages = plan_packages(model, preset, options.precision, device, [plan.shape], options.cache_dir,
                                     **tunables)  # fmt: skip
            for _, key, path in packages:
                row = dict(base, precision=options.precision, key=key, path=str(path))
                row["state"] = "present" if path.exists() else "missing"
                rows.append(row)
            if not check_only:
                runtime = assemble(model, preset, options)
                # auto goes on with inductor where a package cannot be built (engines.build_engine logs why)
                state = runtime.load_path if runtime.engine.backend == "aoti" else "failed (see the log above)"
                for row in rows[-len(packages) :]:
                    row.update(precision=runtime.engine.precision, state=state, seconds=round(runtime.ready_s, 1))
        elif backend == "eager" or check_only:
            state = "nothing to build" if backend == "eager" else "not checkable (compile caches)"
            rows.append(dict(base, precision=options.precision, key="-", path="-", state=state))
        else:
            runtime = assemble(model, preset, options)
            rows.append(dict(base, precision=runtime.engine.precision, key="-", path=str(options.cache_dir),
                             state=runtime.load_path, seconds=round(runtime.ready_s, 1)))  # fmt: skip
    return rows


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        major, minor = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)} sm_{major}{minor}"
    return f"cpu {torch.backends.cpu.get_cpu_capability()}"


def table(rows: list[dict[str, Any]]) -> str:
    """The packages as lines: backend precision BxT device state [seconds], then key and path."""
    lines = []
    for r in rows:
        took = f" in {r['seconds']} s" if "seconds" in r else ""
        shape = f"{r['shape'][0]}x{r['shape'][1]}"
        lines.append(f"{r['preset']} {r['backend']} {r['precision']} {shape} on {r['device']}: {r['state']}{took}\n"
                     f"  key  {r['key']}\n  path {r['path']}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None, bytecode=None) -> int:
    """The command; returns the exit code. bytecode: the bytecode cache the command uses (use_bytecode_cache), then
    warmed for a job's start."""
    from batchvoc.cli import compose
    from batchvoc.settings import JobSettings

    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    check_only = "--check" in argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        settings = JobSettings.from_config(compose([a for a in argv if not a.startswith("-")]))
        rows = build(settings, check_only)
    except ConfigError as err:
        print(f"batchvoc.build: cannot run: {err}", file=sys.stderr)
        return 1
    print(table(rows))
    if bytecode is not None and not check_only:
        _warm(bytecode)
    if any(r["state"].startswith("failed") for r in rows):
        return 1
    return 2 if any(r["state"] == "missing" for r in rows) else 0


def _warm(folder) -> None:
    """The bytecode a job's processes need, compiled into the cache now rather than by the first job (warm_start)."""
    from batchvoc.warm_start import warm_job_start

    try:
        print(f"bytecode cache {folder}: a job's start warmed in {warm_job_start():.1f} s")
    except Exception as err:  # noqa: BLE001 - the packages are built; the first job compiles what is missing
        log.warning("bytecode cache %s not warmed: %s", folder, err)


if __name__ == "__main__":
    sys.exit(reader_gone(main, bytecode=BYTECODE))
