"""python -m batchvoc.bench: x real time, peak GPU memory and error vs fp32 eager, per backend x precision x batch.

Each line vocodes the same `utterances` random mels of `frames` frames through the runner's path (chunk-and-pack into
[batch, n_mels, W + 2C] windows, engine, stitch), `repeats` times after `warmup` runs, and reports the median.
fp32 eager is measured in the same run for every batch size: its audio is the accuracy reference and its speed
the denominator of `speedup`. With whole=true, each item also runs unchunked (one per row) for comparison.
Timing: CUDA events around the run on a GPU (the run ends in a device-to-host copy, so it is complete),
perf_counter on a CPU. Config: batchvoc/conf/bench/bench.yaml.

Engines are built by the runtime builder (batchvoc.runtime.assemble), as the runner's workers build theirs. A
backend entry may carry engine options (runtime.TUNABLES): "inductor:layout=ncl,antialias=conv" builds the inductor
engine with the stock model, for comparison; "inductor:fused_max_channels=32"; "aoti:tile_table=best.json";
"eager:layout=channels_last_2d,antialias=polyphase" (the GPU rewrites in eager). build_s is the engine's build
(or package load) time; load_path says which.
"""

from __future__ import annotations

from batchvoc.bytecode import use_bytecode_cache

if __name__ == "__main__":
    use_bytecode_cache()  # before torch: the command-line run, on an image without bytecode (bytecode.py)

import json
import logging
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from batchvoc.backends import PRECISION_NAMES, check_names
from batchvoc.chunking import pack
from batchvoc.device_defaults import default_row_length
from batchvoc.engines import check_backend
from batchvoc.errors import ConfigError, Keys
from batchvoc.hostmem import retain_freed_memory
from batchvoc.runtime import EngineOptions, assemble, plan_chunks, resolve_device
from batchvoc.stream import audio_of

CONF = str(Path(__file__).resolve().parent / "conf" / "bench")  # its own folder: conf/preset is a config group
BENCH_KEYS = Keys(checkpoint="checkpoint", backend="backends")  # how its warnings name the bench's own keys
log = logging.getLogger("batchvoc.bench")


def timed(run: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """(seconds, result) of run(): CUDA events on a GPU, perf_counter otherwise."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        result = run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000, result
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def accuracy(audio: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """max abs error, rel L2 and SNR (dB) of audio against ref (flat float arrays)."""
    diff = audio.astype(np.float64) - ref.astype(np.float64)
    noise, signal = float(np.linalg.norm(diff)), float(np.linalg.norm(ref.astype(np.float64)))
    snr = None if noise == 0 else 20 * math.log10(signal / noise)  # None: identical (JSON has no inf)
    return dict(max_abs=float(np.abs(diff).max()), rel_l2=noise / signal, snr_db=snr)


def whole_runner(engine, items, batch: int, silence: float) -> list[np.ndarray]:
    """Vocode items unchunked, `batch` per forward (last batch filled with silence items); audio per item."""
    out = []
    for i in range(0, len(items), batch):
        mels = [m for _, m in items[i : i + batch]]
        mels += [np.full_like(mels[0], silence)] * (batch - len(mels))
        audio = engine(torch.from_numpy(np.stack(mels)))
        out += list(audio[: min(batch, len(items) - i)].cpu().numpy())
    return out


def parse_backend(spec: str) -> tuple[str, dict[str, str]]:
    """Parse a backend entry: inductor:layout=ncl,mode=default -> ("inductor", {"layout": "ncl", "mode": "default"})."""
    name, _, rest = str(spec).partition(":")
    options = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError("backends", f"bad engine option {part!r} in {spec!r}; write key=value")
        options[key.strip()] = value.strip()
    return name.strip(), options


def measure(cfg, model, preset, device, mode: str, backend: str, precision: str, batch: int, geometry: dict,
            items: list) -> tuple[dict[str, Any], np.ndarray]:  # fmt: skip
    """Build one engine (runtime.assemble), warm up, time `repeats` runs; (result line, audio of all items
    concatenated). mode "whole" builds it for (batch, frames) rows: one utterance per row, no context.

    backend: a name, or name:key=value,... with engine options (parse_backend)."""
    spec = backend
    backend, options = parse_backend(spec)
    window, context = geometry["window"], geometry["context"]
    shape = (batch, window + 2 * context) if mode == "chunked" else (batch, int(cfg.frames))
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    engine_options = EngineOptions(backend, precision, batch, window, str(device), cfg.cache_dir, options)
    runtime = assemble(model, preset, engine_options, shape=shape)
    engine, build_s = runtime.engine, runtime.ready_s
    check = bool(cfg.get("round_trip")) and mode == "chunked"
    if mode == "chunked":
        stream = runtime.stream(round_trip=check)

        def run():
            return [a for _, a in audio_of(stream, items)]
    else:

        def run():
            return whole_runner(engine, items, batch, preset.silence)

    for _ in range(int(cfg.warmup)):
        run()
    times = []
    for _ in range(int(cfg.repeats)):
        audio = None  # the last run's audio (views of its pinned batch buffers: stream.py) freed before the next
        seconds, audio = timed(run, device)
        times.append(seconds)
    audio_s = len(items) * int(cfg.frames) * preset.hop_length / preset.sample_rate
    median = statistics.median(times)
    fill = _fill(items, window, context, batch, preset.silence) if mode == "chunked" else 1.0
    line = dict(mode=mode, backend=engine.backend, precision=engine.precision, requested=f"{spec}/{precision}",
                options=options, round_trip=check, batch=batch, shape=list(shape), fill=round(fill, 4),
                build_s=round(build_s, 3), load_path=engine.load_path, median_s=median, min_s=min(times),
                x_realtime=audio_s / median, audio_s=audio_s, runs=len(times),
                peak_mem_mb=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
                engine=engine.describe())  # fmt: skip
    return line, np.concatenate(audio)


def _fill(items, window: int, context: int, batch: int, silence: float) -> float:
    """Share of the engine's work (all batches, tail included) that is kept audio."""
    batches = list(pack(items, window, context, batch, silence))
    return sum(b.real_frames for b in batches) / sum(b.mel.shape[0] * b.length for b in batches)


def run_bench(cfg) -> dict[str, Any]:
    """Run every line of the config; write cfg.out (JSON) and print a table. Returns the report."""
    from omegaconf import OmegaConf

    from batchvoc.models import load_vocoder

    if int(cfg.repeats) < 10:
        raise ConfigError("repeats", f"at least 10 timed runs per line, got {cfg.repeats}")
    backends, precisions, batches = list(cfg.backends), list(cfg.precisions), [int(b) for b in cfg.batch]
    for precision in precisions:
        if precision not in PRECISION_NAMES:
            raise ConfigError("precisions", f"unknown precision {precision!r}; choose {', '.join(PRECISION_NAMES)}")
    for backend in backends:
        name, options = parse_backend(backend)
        for precision in precisions:
            try:
                check_names(name, precision, options)
            except ConfigError as err:
                raise ConfigError("backends", f"{backend!r}: {err}") from None
            check_backend(name, precision)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    retain_freed_memory()  # as the runner's workers do
    device = resolve_device(str(cfg.device))
    hparams = OmegaConf.to_container(cfg.hparams) if cfg.get("hparams") else None
    model, preset = load_vocoder(cfg.preset, cfg.checkpoint, hparams, keys=BENCH_KEYS)
    plan = plan_chunks(model, preset, 1, cfg.window, default_row_length(device, preset.frame_rate))
    window, context = plan.chunk_frames, plan.context
    geometry = dict(window=window, context=context)
    rng = np.random.default_rng(int(cfg.seed))
    items = [(f"item{i}", (rng.standard_normal((preset.n_mels, int(cfg.frames))) * 2 - 6).astype(np.float32))
             for i in range(int(cfg.utterances))]  # fmt: skip
    combos = [(b, p) for b in backends for p in precisions if (b, p) != ("eager", "fp32")]
    modes = ["chunked", "whole"] if cfg.get("whole") else ["chunked"]
    lines = []
    for mode in modes:
        for batch in batches:
            base, ref = measure(cfg, model, preset, device, mode, "eager", "fp32", batch, geometry, items)
            base.update(accuracy(ref, ref), speedup=1.0)
            lines.append(base)
            _print_line(base)
            for backend, precision in combos:
                try:
                    line, audio = measure(cfg, model, preset, device, mode, backend, precision, batch, geometry, items)
                except ConfigError:
                    raise
                except Exception as exc:  # one failing combination does not lose the others
                    log.exception("%s %s/%s batch %d failed", mode, backend, precision, batch)
                    line = dict(mode=mode, requested=f"{backend}/{precision}", batch=batch, error=repr(exc))
                else:
                    line.update(accuracy(audio, ref), speedup=line["x_realtime"] / base["x_realtime"])
                lines.append(line)
                _print_line(line)
    report = dict(
        preset=preset.name, device=_device_name(device), torch=torch.__version__, window=window, context=context,
        frames=int(cfg.frames), utterances=int(cfg.utterances), sample_rate=preset.sample_rate, hop=preset.hop_length,
        results=lines, config=OmegaConf.to_container(cfg, resolve=True),
    )  # fmt: skip
    out = Path(str(cfg.out))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(table(report))
    print(f"wrote {out}")
    return report


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def _print_line(line: dict) -> None:
    if "error" in line:
        log.warning("%s %s batch %d: failed: %s", line["mode"], line["requested"], line["batch"], line["error"])
    else:
        log.info("%s %s/%s batch %d: %.1fx real time, %.2fx eager fp32, SNR %s dB", line["mode"], _label(line),
                 line["precision"], line["batch"], line["x_realtime"], line["speedup"], _snr(line))  # fmt: skip


def _label(line: dict) -> str:
    """The backend, with its engine options if any (inductor:layout=ncl)."""
    options = line.get("options") or {}
    return line["backend"] + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else "")


def _snr(line: dict) -> str:
    return "exact" if line["snr_db"] is None else f"{line['snr_db']:.1f}"


def table(report: dict) -> str:
    """The report as a fixed-width text table."""
    head = (
        f"{report['preset']} on {report['device']}: {report['utterances']} utterances x {report['frames']} frames, "
        f"window {report['window']} + 2 x {report['context']} context"
    )
    width = max([9, *(len(_label(r)) for r in report["results"] if "error" not in r)])  # the widest backend's
    cols = f"{'mode':8} {'backend':{width}} {'prec':5} {'batch':>5} {'x_rt':>8} {'speedup':>7} {'mem_MB':>8} " \
           f"{'fill':>5} {'rel_l2':>9} {'snr_dB':>7} {'build_s':>7}"  # fmt: skip
    rows = [head, cols]
    for r in report["results"]:
        if "error" in r:
            rows.append(f"{r['mode']:8} {r['requested']:15} {r['batch']:>5}  failed: {r['error'][:60]}")
            continue
        mem = "-" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.0f}"
        rows.append(f"{r['mode']:8} {_label(r):{width}} {r['precision']:5} {r['batch']:>5} {r['x_realtime']:8.1f} "
                    f"{r['speedup']:7.2f} {mem:>8} {r.get('fill', 1.0):5.2f} {r['rel_l2']:9.1e} {_snr(r):>7} "
                    f"{r['build_s']:7.1f}")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    import hydra

    @hydra.main(version_base="1.3", config_path=CONF, config_name="bench")
    def app(cfg) -> None:
        try:
            run_bench(cfg)
        except ConfigError as err:
            print(f"batchvoc.bench: cannot run: {err}", file=sys.stderr)
            sys.exit(1)

    app()


if __name__ == "__main__":
    main()
