"""Session 31, call 1: aoti against inductor at equal clocks (rounds alternating the two engines), per forward
and through the bench's stream; the stream's cost beyond its forwards; a stream that neither copies stitched
whole utterances nor recycles its two pinned buffers ("nocopy"); peak GPU memory per engine.

    PYTHONPATH=. python3 probe.py OUT.json [rounds]
"""

import batchvoc  # noqa: F401  first: before torch, so aoti packages bind to the system C++ runtime (native.py)

# isort: split

import json
import os
import statistics
import sys
import time

import numpy as np
import torch

import batchvoc.chunking as chunking
import batchvoc.stream as stream_mod
from batchvoc.bench import timed
from batchvoc.device_defaults import default_row_length
from batchvoc.hostmem import retain_freed_memory
from batchvoc.models import load_vocoder
from batchvoc.runtime import EngineOptions, assemble, plan_chunks
from batchvoc.stream import audio_of


class FreshCopies(stream_mod._HostCopies):
    """A new pinned pair per batch (torch's caching host allocator recycles them once their arrays are gone)."""

    def __call__(self, audio, values):
        self._buffers = []
        return super().__call__(audio, values)


class ViewStitcher(chunking.Stitcher):
    """Whole utterances handed on as views of their batch's buffer, unfinished parts not owned."""

    def feed(self, packed, audio, values=None, error=None):
        if audio is not None:
            audio = np.asarray(audio).reshape(audio.shape[0], -1)
        done = []
        for p in packed.pieces:
            self._index = p.index
            self._error = self._error or error
            if p.row is not None and self._error is None:
                first = p.column * self.hop
                self._parts.append(audio[p.row, first : first + p.frames * self.hop])
            if p.last:
                done.append(self._finish(p))
        return done

    def _finish(self, p):
        parts = self._parts
        audio = parts[0] if len(parts) == 1 else np.concatenate(parts)
        out = chunking.Stitched(p.index, p.key, audio, np.zeros(0), None)
        self._index, self._parts, self._sums, self._error = None, [], None, None
        return out


def use(variant: str) -> None:
    stream_mod._HostCopies = FreshCopies if variant == "nocopy" else ORIG_COPIES
    stream_mod.Stitcher = ViewStitcher if variant == "nocopy" else ORIG_STITCHER


ORIG_COPIES, ORIG_STITCHER = stream_mod._HostCopies, stream_mod.Stitcher


def main() -> None:
    out = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    retain_freed_memory()
    dev = torch.device(os.environ.get("DEV", "cuda"))
    n_utt = int(os.environ.get("N", "256"))
    names = os.environ.get("ENGINES", "inductor,aoti").split(",")
    model, preset = load_vocoder("gsv_v4", "random", json.loads(os.environ.get("HPARAMS", "null")))
    plan = plan_chunks(model, preset, 16, None, default_row_length(dev, preset.frame_rate))
    rng = np.random.default_rng(0)
    items = [(f"i{i}", (rng.standard_normal((preset.n_mels, 1000)) * 2 - 6).astype(np.float32)) for i in range(n_utt)]
    window, context = plan.chunk_frames, plan.context
    length = window + 2 * context
    print(f"rows of {length} frames (window {window} + 2 x {context})", flush=True)
    if os.environ.get("EAGER_FIRST", "1") == "1":
        rt0 = assemble(
            model, preset, EngineOptions("eager", "fp32", 16, window, str(dev), None, {}), shape=(16, length)
        )
        s0 = rt0.stream(round_trip=False)
        t = time.perf_counter()
        [a for _, a in audio_of(s0, items[:16])]
        print(f"eager fp32 stream of 16: {time.perf_counter() - t:.2f} s", flush=True)
        del rt0, s0
        torch.cuda.empty_cache()
    engines = {}
    for name in names:
        t = time.perf_counter()
        rt = assemble(
            model,
            preset,
            EngineOptions(name, "fp16", 16, window, str(dev), os.environ.get("BATCHVOC_CACHE", "/tmp/bvc"), {}),
            shape=(16, length),
        )
        engines[name] = rt
        print(f"{name} ready in {time.perf_counter() - t:.1f} s ({rt.load_path})", flush=True)
    # host-only costs of the stream's steps on this machine
    t = time.perf_counter()
    batches = list(chunking.pack_plan(items, plan))
    pack_ms = (time.perf_counter() - t) * 1000 / len(batches)
    fake = np.random.default_rng(1).standard_normal((16, length * preset.hop_length)).astype(np.float32)
    st = []
    for b in batches[:6]:
        s = chunking.Stitcher(preset.hop_length)
        t = time.perf_counter()
        s.feed(b, fake)
        st.append((time.perf_counter() - t) * 1000)
    host = dict(batches=len(batches), pack_ms_per_batch=pack_ms, stitch_ms_per_batch=statistics.median(st))
    print("host:", host, flush=True)
    mel = torch.full((16, preset.n_mels, length), preset.silence, device=dev) + torch.randn(
        16, preset.n_mels, length, device=dev
    )
    valid = torch.tensor([0, length], device=dev).repeat(16, 1)
    res = {k: dict(fwd=[], stream=[], nocopy=[], mem_fwd=None, mem_stream=None) for k in engines}

    def forwards(rt):
        with torch.inference_mode():
            for _ in range(16):
                rt.engine(mel, valid)

    def stream_run(rt):
        s = rt.stream(round_trip=False)
        return [a for _, a in audio_of(s, items)]

    ref = {}
    for name, rt in engines.items():  # warm-up, and memory per engine
        cuda = dev.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(dev)
        forwards(rt)
        if cuda:
            torch.cuda.synchronize()
            res[name]["mem_fwd"] = torch.cuda.max_memory_allocated(dev) / 2**20
            torch.cuda.reset_peak_memory_stats(dev)
        for v in ("base", "nocopy"):
            use(v)
            a = stream_run(rt)
            stream_run(rt)
            ref[(name, v)] = np.concatenate(a)
        use("base")
        res[name]["mem_stream"] = torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else 0
    for name in engines:
        assert np.array_equal(ref[(name, "base")], ref[(name, "nocopy")]), name
    for r in range(rounds):
        order = list(engines) if r % 2 == 0 else list(engines)[::-1]
        for name in order:
            rt = engines[name]
            res[name]["fwd"].append(timed(lambda rt=rt: forwards(rt), dev)[0] * 1000 / 16)
            use("base")
            res[name]["stream"].append(timed(lambda rt=rt: stream_run(rt), dev)[0] * 1000)
            use("nocopy")
            res[name]["nocopy"].append(timed(lambda rt=rt: stream_run(rt), dev)[0] * 1000)
            use("base")
        print(
            f"round {r}: "
            + "  ".join(
                f"{n} fwd {res[n]['fwd'][-1]:.2f} stream {res[n]['stream'][-1]:.1f} nocopy {res[n]['nocopy'][-1]:.1f}"
                for n in engines
            ),
            flush=True,
        )
    audio_s = n_utt * 1000 * preset.hop_length / preset.sample_rate
    summary = {}
    for name, d in res.items():
        f, s, n = (statistics.median(d[k]) for k in ("fwd", "stream", "nocopy"))
        summary[name] = dict(
            fwd_ms=f,
            stream_ms=s,
            nocopy_ms=n,
            overhead_ms=s - 16 * f,
            nocopy_overhead_ms=n - 16 * f,
            x_stream=audio_s / s * 1000,
            x_nocopy=audio_s / n * 1000,
            x_fwd=audio_s / (16 * f) * 1000,
            mem_fwd_mb=d["mem_fwd"],
            mem_stream_mb=d["mem_stream"],
        )
    a, i = summary[names[-1]], summary[names[0]]
    summary["aoti_over_inductor"] = dict(
        fwd=i["fwd_ms"] / a["fwd_ms"], stream=i["stream_ms"] / a["stream_ms"], nocopy=i["nocopy_ms"] / a["nocopy_ms"]
    )
    json.dump(dict(host=host, raw=res, summary=summary), open(out, "w"), indent=1)
    print("engine    fwd ms   stream ms  overhead  nocopy ms  overhead   x(stream)  x(nocopy)  mem fwd/stream MB")
    for name in engines:
        s = summary[name]
        print(
            f"{name:9s} {s['fwd_ms']:7.3f} {s['stream_ms']:9.1f} {s['overhead_ms']:8.1f} {s['nocopy_ms']:9.1f} "
            f"{s['nocopy_overhead_ms']:8.1f} {s['x_stream']:10.1f} {s['x_nocopy']:10.1f}  "
            f"{s['mem_fwd_mb'] or 0:.0f}/{s['mem_stream_mb']:.0f}"
        )
    print("aoti/inductor speed:", summary["aoti_over_inductor"])


if __name__ == "__main__":
    main()
