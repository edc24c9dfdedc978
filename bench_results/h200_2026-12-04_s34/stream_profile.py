"""Session 34: where the bench's time goes beyond the engine's forwards. The issue's bench line (gsv_v4 fp16, batch 16,
256 random utterances x 1000 frames) timed as the bench times it (the stream: pack, upload, engine, checks, download,
stitch), then the engine alone on the same packed batches already on the device, then the engine on the warm-up
input (silence: what kernel_profile.py times); and one stream run under torch.profiler (span, busy, gaps per forward).

    PYTHONPATH=. python3 stream_profile.py OUT_DIR [backend,...]
"""

import batchvoc  # noqa: F401  before torch (native.py)

# isort: split

import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from batchvoc.bench import timed
from batchvoc.chunking import pack
from batchvoc.device_defaults import default_row_length
from batchvoc.engines.base import warmup_input
from batchvoc.models import load_vocoder
from batchvoc.runtime import EngineOptions, assemble, plan_chunks
from batchvoc.stream import audio_of

sys.path.insert(0, str(Path(__file__).parents[1] / "h200_2026-12-04_s33"))
from kernel_profile import summarize  # noqa: E402

UTTERANCES, FRAMES, BATCH = 256, 1000, 16


def median_x(run, device, audio_s: float, repeats: int = 10) -> float:
    for _ in range(2):
        run()
    return audio_s / statistics.median(timed(run, device)[0] for _ in range(repeats))


def one_backend(backend: str, model, preset, geometry: tuple[int, int], items: list, batches: list, out: Path) -> dict:
    window, context = geometry
    device = torch.device("cuda")
    audio_s = UTTERANCES * FRAMES * preset.hop_length / preset.sample_rate
    cache = os.environ.get("BATCHVOC_CACHE", "/tmp/bvc")
    options = EngineOptions(backend, "fp16", BATCH, window, "cuda", cache, {})
    rt = assemble(model, preset, options, shape=(BATCH, window + 2 * context))
    stream = rt.stream(round_trip=False)

    def whole_stream():
        return [a for _, a in audio_of(stream, items)]

    on_device = [(torch.from_numpy(b.mel).to(device), torch.from_numpy(b.bounds).to(device)) for b in batches]
    mel, valid = warmup_input(preset.n_mels, (BATCH, window + 2 * context), preset.silence, torch.float32, device)

    def engine_same_batches():
        with torch.inference_mode():
            for m, v in on_device:
                rt.engine(m, v)

    def engine_silence():
        with torch.inference_mode():
            for _ in on_device:
                rt.engine(mel, valid)

    line = dict(forwards=len(batches), stream_x=median_x(whole_stream, device, audio_s),
                engine_same_batches_x=median_x(engine_same_batches, device, audio_s),
                engine_silence_x=median_x(engine_silence, device, audio_s),
                stream_again_x=median_x(whole_stream, device, audio_s))  # fmt: skip
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        whole_stream()
        torch.cuda.synchronize()
    trace = out / f"stream_{backend}.json"
    prof.export_chrome_trace(str(trace))
    line["profile"] = p = summarize(trace, len(batches))
    print(f"{backend}: {line['forwards']} forwards; x real time: stream {line['stream_x']:.1f} / "
          f"{line['stream_again_x']:.1f}, engine on the same batches {line['engine_same_batches_x']:.1f}, "
          f"engine on silence {line['engine_silence_x']:.1f}", flush=True)  # fmt: skip
    print(f"  stream profile per forward: span {p['span_ms']:.3f} ms, busy {p['busy_ms']:.3f}, gaps "
          f"{p['gaps_ms']:.3f}, launches {p['launches']:.0f}; biggest gaps us {p['biggest_gaps_us']}")  # fmt: skip
    print("  by kind", p["by_kind"])
    print("  host", p["host"])
    return line


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    backends = sys.argv[2].split(",") if len(sys.argv) > 2 else ["inductor"]
    device = torch.device("cuda")
    model, preset = load_vocoder("gsv_v4", "random")
    plan = plan_chunks(model, preset, 1, None, default_row_length(device, preset.frame_rate))
    window, context = plan.chunk_frames, plan.context
    rng = np.random.default_rng(0)
    items = [(f"item{i}", (rng.standard_normal((preset.n_mels, FRAMES)) * 2 - 6).astype(np.float32))
             for i in range(UTTERANCES)]  # fmt: skip
    batches = list(pack(items, window, context, BATCH, preset.silence))
    report = {}
    for backend in backends:
        report[backend] = one_backend(backend, model, preset, (window, context), items, batches, out)
    (out / "stream_summary.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
