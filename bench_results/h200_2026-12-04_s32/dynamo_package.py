"""Next session's lead for aoti's gap: an AOTInductor package built from Dynamo's graph (torch._dynamo.export, then
torch._inductor.aot_compile, which takes any GraphModule) against batchvoc's package (torch.export), both timed per
forward in one process with the inductor engine. Splits "the exported graph" from "the package's runtime".

    PYTHONPATH=. python3 dynamo_package.py OUT_DIR [preset] [batch] [device]
"""

import batchvoc  # noqa: F401  before torch (native.py)

# isort: split

import statistics
import sys
import time
from pathlib import Path

import torch
from torch import _inductor

from batchvoc.bench import timed
from batchvoc.engines.aoti import inductor_configs
from batchvoc.engines.base import build_target, laid_out, warmup_input
from batchvoc.engines.ops import compiled_as
from batchvoc.models import load_vocoder
from batchvoc.runtime import EngineOptions, build_runtime


def dynamo_package(preset_name: str, batch: int, device: str, out: Path) -> tuple[object, tuple]:
    model, preset = load_vocoder(preset_name, "random")
    rt = build_runtime(preset_name, "random", EngineOptions("eager", "fp16", batch, None, device, None, {}))
    target = build_target("aoti", preset.hop_length, "fp16", torch.device(device), [rt.plan.shape])
    net, chosen = laid_out(model, target)
    mel, valid = warmup_input(preset.n_mels, rt.plan.shape, preset.silence, target.dtype, target.device)
    with torch.no_grad(), compiled_as("traced"):
        gm = torch._dynamo.export(net)(mel, valid).graph_module
        options = {"aot_inductor.package": True, **inductor_configs(chosen)}
        files = _inductor.aot_compile(gm, (mel, valid), options=options)
    path = out / "dynamo.pt2"
    from torch._inductor.package import package_aoti

    package_aoti(str(path), files)
    return _inductor.aoti_load_package(str(path)), (mel, valid)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    preset = sys.argv[2] if len(sys.argv) > 2 else "gsv_v4"
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    device = sys.argv[4] if len(sys.argv) > 4 else "cuda"
    start = time.perf_counter()
    package, (mel, valid) = dynamo_package(preset, batch, device, out)
    print("dynamo package built in", round(time.perf_counter() - start, 1), "s", flush=True)
    engines = {"dynamo_pkg": lambda: package(mel, valid)}
    for backend in ("aoti", "inductor"):
        rt = build_runtime(preset, "random", EngineOptions(backend, "fp16", batch, None, device, str(out), {}))
        engines[backend] = lambda rt=rt: rt.engine(mel.float(), valid)
    n, rounds = (16, 8) if device == "cuda" else (1, 1)
    times = {k: [] for k in engines}
    with torch.inference_mode():
        ref = engines["inductor"]().float()
        for k, fn in engines.items():
            y = fn()
            y = (y[0] if isinstance(y, list | tuple) else y).float().reshape(ref.shape)
            print(k, "rel L2 vs inductor", float((y - ref).norm() / ref.norm()), flush=True)
        for r in range(rounds):
            for k in list(engines)[:: 1 if r % 2 == 0 else -1]:
                fn = engines[k]
                times[k].append(timed(lambda fn=fn: [fn() for _ in range(n)], torch.device(device))[0] * 1000 / n)
            print(r, {k: round(v[-1], 3) for k, v in times.items()}, flush=True)
    base = statistics.median(times["inductor"])
    for k, v in times.items():
        print(f"{k:12s} {statistics.median(v):9.3f} ms  {statistics.median(v) / base:.4f} of inductor")


if __name__ == "__main__":
    main()
