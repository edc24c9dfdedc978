"""Host-side throughput of one actor's shard pipeline (read -> check -> vocode -> write), as `run_shard` runs it.

    PYTHONPATH=. python benchmarks/pipeline.py --hours 1              # host-side probe: an engine that costs nothing
    PYTHONPATH=. python benchmarks/pipeline.py --hours 1 --profile    # + where each thread's Python time goes
    PYTHONPATH=. python benchmarks/pipeline.py --hours 1 --engine real --backend aoti --precision fp16 \
        --cache-dir /tmp/bvc [--checkpoint /models/gsv-v4/vocoder.pth]   # on a GPU box: the whole actor

It writes a synthetic manifest with jobs/make_manifest.py (inline mels; or takes --manifest), plans shards of
--shard-seconds as the driver does, and runs every shard through `run_shard` in this process, like a worker,
into a fresh output folder (16-bit PCM WAV by default). It prints per shard and in total: rows, audio, the stages'
seconds (ShardStats: read_s and check_s thread busy time, vocode_s the vocode loop's, write_s the writer threads'
summed time, wall_s), rows/s and x real time, and how long the engine waits for a shard's first batch and the
shard takes after its last one (the device idles then when shards run one after the other); then the CPU seconds
of each stage's threads and of the process (on a machine shared with other work, CPU time compares two versions
better than wall time).

Shards run in the order the driver deals them to one actor (plan order; --order largest: largest first, as it
dealt them before).
The first shard runs once untimed first (an actor's first shard pays for imports and first touches).

--engine zero (the default) is the host-side probe: `HostProbeEngine` returns silence of the engine's output
shape without computing anything, with the GPU plan (batch 16, rows of 1024 frames), and `SilenceCounts` stands
for the count-only audio checks (clipping, non-finite samples: exactly zero for silence). On a GPU those checks
run on the device, so the probe leaves them out of the host's time; it prints what they cost on this CPU apart.
Its x real time is then what the host side of one actor sustains: the engine is the bound once this is well above
the engine's own speed. --engine real builds the job's engine (batchvoc.runtime.build_runtime) and runs the
round-trip check when --checkpoint holds real weights, as a worker does.

--overlap 2 runs two shards at a time, in two threads sharing the stream under one device lock (run_shard's
`device`): a shard reads and checks while the other vocodes, and writes its last rows while the next vocodes.

--profile runs each thread under cProfile (slower: compare timings without it) and prints the top functions
by own time for the vocode (shard) threads, the read threads, the check threads and the writers, each kind together.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from batchvoc.chunking import ChunkPlan
from batchvoc.device_defaults import GPU_BATCH, default_row_length
from batchvoc.hostmem import retain_freed_memory
from batchvoc.manifest import Shard, cursors, find_manifest_files, plan_shards
from batchvoc.manifest.conventions import MelChecks
from batchvoc.models import load_vocoder
from batchvoc.roundtrip import DEFAULT_MAX_MEL_ERROR, FRAME_VALUES, audio_counts
from batchvoc.runner.pipeline import run_shard
from batchvoc.runner.stages.channel import StageThread
from batchvoc.runtime import EngineOptions, build_runtime, plan_chunks
from batchvoc.sink import ShardSink
from batchvoc.stats import ShardStats
from batchvoc.stream import VocoderStream

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from jobs.make_manifest import write_synthetic  # noqa: E402


class HostProbeEngine:
    """The host-side probe's engine: audio [B, L * hop] float32 of silence, the same tensor every call (no work)."""

    backend, precision, device = "host-probe", "fp32", torch.device("cpu")

    def __init__(self, hop: int):
        self.hop = hop
        self._audio: Tensor | None = None

    def __call__(self, mel: Tensor, bounds: Tensor) -> Tensor:
        rows, length = mel.shape[0], mel.shape[2]
        if self._audio is None or self._audio.shape != (rows, length * self.hop):
            self._audio = torch.zeros((rows, length * self.hop), dtype=torch.float32)
        return self._audio


class SilenceCounts:
    """The count-only audio checks' per-frame values [FRAME_VALUES, B, L] for silence: all zeros (a GPU computes
    them on the device, off the host's time)."""

    def __init__(self):
        self._values: Tensor | None = None

    def frame_values(self, audio: Tensor, mel: Tensor, bounds: Tensor) -> Tensor:
        shape = (FRAME_VALUES, bounds.shape[0], bounds.shape[2])
        if self._values is None or self._values.shape != shape:
            self._values = torch.zeros(shape, dtype=torch.float32)
        return self._values


class CallTimes:
    """Wraps an engine: when it was first and last called (perf_counter), to see the device's idle time at a
    shard's start (the first batch waits for reading and checking) and end (the last rows' writes, the manifest)."""

    def __init__(self, engine):
        self.engine, self.first, self.last = engine, None, None

    def __call__(self, mel: Tensor, bounds: Tensor) -> Tensor:
        now = time.perf_counter()
        self.first = now if self.first is None else self.first
        self.last = now
        return self.engine(mel, bounds)


def probe_stream(preset_name: str, batch: int) -> tuple[VocoderStream, MelChecks]:
    """The host-side probe's stream (HostProbeEngine, SilenceCounts, the GPU plan of the preset's model) and checks."""
    model, preset = load_vocoder(preset_name, "random")
    plan = plan_chunks(model, preset, batch, None, default_row_length("cuda", preset.frame_rate))
    stream = VocoderStream(HostProbeEngine(plan.hop), plan, preset.sample_rate)
    stream.checker = SilenceCounts()
    return stream, MelChecks.for_preset(preset)


def real_stream(args: argparse.Namespace) -> tuple[VocoderStream, MelChecks, float | None]:
    """The job's engine as a worker builds it; (stream, checks, max_mel_error: None without the round trip)."""
    options = EngineOptions(backend=args.backend, precision=args.precision, batch=args.batch, cache_dir=args.cache_dir)
    rt = build_runtime(args.preset, args.checkpoint, options)
    print(f"engine: {rt.describe()}")
    checking = args.checkpoint != "random"
    limit = DEFAULT_MAX_MEL_ERROR if checking else None
    return rt.stream(round_trip=checking), MelChecks.for_preset(rt.preset), limit


def count_checks_ms(plan: ChunkPlan, repeats: int = 5) -> float:
    """Milliseconds per batch the count-only checks take on this CPU's torch (left out of the probe's time)."""
    audio = torch.zeros((plan.batch, plan.length * plan.hop), dtype=torch.float32)
    bounds = torch.zeros((plan.batch, 2, plan.length), dtype=torch.int64)
    audio_counts(audio, bounds)
    start = time.perf_counter()
    for _ in range(repeats):
        audio_counts(audio, bounds)
    return (time.perf_counter() - start) / repeats * 1e3


def stage_of(thread_name: str) -> str:
    """read-<shard> -> read, write-<shard>-<i> -> write, shard_<i> (the probe's pool: vocode) -> vocode."""
    return thread_name.split("-", 1)[0].rstrip("_0123456789").replace("shard", "vocode")


class ThreadCPU:
    """CPU seconds per stage: every thread started while `active` adds its time.thread_time() to its stage's sum
    when it ends (wall-clock stage times include waiting for the GIL and, on a shared machine, for a core)."""

    CLASSES = (threading.Thread, StageThread)  # StageThread has a run() of its own

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        self._runs = [kind.run for kind in self.CLASSES]

    def _timed(self, run):
        def timed_run(thread: threading.Thread) -> None:
            try:
                run(thread)
            finally:
                with self._lock:
                    stage = stage_of(thread.name)
                    self.seconds[stage] = self.seconds.get(stage, 0.0) + time.thread_time()

        return timed_run

    def __enter__(self) -> ThreadCPU:
        for kind, run in zip(self.CLASSES, self._runs, strict=True):
            kind.run = self._timed(run)  # type: ignore[method-assign]
        return self

    def __exit__(self, *_) -> None:
        for kind, run in zip(self.CLASSES, self._runs, strict=True):
            kind.run = run  # type: ignore[method-assign]

    def report(self) -> str:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in sorted(self.seconds.items()))
        return f"thread CPU seconds by stage: {stages} (pyarrow decodes in threads of its own: not in read's)"


class ThreadProfiles:
    """cProfile per thread: each thread started while `active` gets a Profile of its own (threading.setprofile),
    the calling thread too. `report()` groups them by thread name (write-<shard>-<i> -> write)."""

    def __init__(self):
        self.profiles: list[tuple[str, cProfile.Profile]] = []
        self._main = cProfile.Profile()

    def _start(self, *_) -> None:
        profile = cProfile.Profile()
        self.profiles.append((threading.current_thread().name, profile))
        profile.enable()

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._start)
        self._main.enable()
        return self

    def __exit__(self, *_) -> None:
        self._main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        self.profiles.append(("main", self._main))

    def report(self, top: int) -> str:
        groups: dict[str, pstats.Stats] = {}
        for name, profile in self.profiles:
            group = stage_of(name)
            out = io.StringIO()
            if group in groups:
                groups[group].add(profile)
            else:
                groups[group] = pstats.Stats(profile, stream=out)
        text = []
        for group, stats in groups.items():
            out = io.StringIO()
            stats.stream = out
            stats.sort_stats("tottime").print_stats(top)
            body = out.getvalue()
            text.append(f"==== thread {group}: {body[body.find('ncalls') - 4 :] if 'ncalls' in body else body}")
        return "\n".join(text)


def manifest_of(args: argparse.Namespace, scratch: Path) -> Path:
    """--manifest, or a synthetic one of --hours written into scratch."""
    if args.manifest:
        return Path(args.manifest)
    folder = scratch / "manifest"
    rows = write_synthetic(folder, args.preset, args.hours, args.seconds, files=1, row_group=500)
    print(f"wrote {rows} rows ({args.hours} h of {args.preset}) to {folder}")
    return folder


def build(args: argparse.Namespace) -> tuple[VocoderStream, MelChecks, float | None]:
    """(stream, checks, max_mel_error) of --engine."""
    if args.engine == "real":
        return real_stream(args)
    stream, checks = probe_stream(args.preset, args.batch or GPU_BATCH)
    print(f"count-only checks on this CPU: {count_checks_ms(stream.plan):.1f} ms per batch (not in the times)")
    return stream, checks, None


def run_all(args: argparse.Namespace, manifest: Path, out: Path, profiles: ThreadProfiles | None) -> Totals:
    """Every shard of the manifest through run_shard as one actor runs them (--overlap at a time, sharing the
    stream under one device lock), after the first one once untimed (an actor's first shard pays for imports and
    first touches)."""
    stream, checks, limit = build(args)
    plan = stream.plan
    print(f"plan: batch {plan.batch}, rows of {plan.length} frames (context {plan.context}), hop {plan.hop}")
    target = int(args.shard_seconds * stream.sample_rate / plan.hop)
    shards = plan_shards(find_manifest_files(str(manifest)), target, packing=plan)  # cut for its batches, as a job's
    if args.order == "largest":  # as runner/dealer.py dealt them before 1a1ee80
        shards = sorted(shards, key=lambda s: -s.frames)
    calls = stream.engine = CallTimes(stream.engine)
    device = threading.Lock()

    def one(shard: Shard, folder: Path) -> ShardStats:
        sink = ShardSink(folder, shard.name, stream.sample_rate, args.format, args.subtype)
        calls.first = None
        start = time.perf_counter()
        stats = run_shard(shard, stream, sink, checks, max_mel_error=limit, info=dict(actor="probe"), device=device)
        if args.overlap == 1 and calls.first is not None:
            print(f"  {stats.shard}: first batch after {(calls.first - start) * 1e3:.0f} ms, "
                  f"{(time.perf_counter() - calls.last) * 1e3:.0f} ms from the last one to the end")  # fmt: skip
        print(line(stats))
        return stats

    print("warm-up:")
    one(shards[0], out / "warm-up")
    cursors.clear()
    print("timed:")
    cpu, start, threads = time.process_time(), time.perf_counter(), ThreadCPU()
    with profiles or contextlib.nullcontext(), threads:
        with ThreadPoolExecutor(args.overlap, thread_name_prefix="shard") as pool:
            results = list(pool.map(lambda shard: one(shard, out / "timed"), shards))
    print(threads.report())
    return Totals(results, time.perf_counter() - start, time.process_time() - cpu)


def line(s: ShardStats) -> str:
    rate = s.rows / s.wall_s if s.wall_s else 0.0
    return (f"{s.shard:>28} rows {s.rows:5d} audio {s.audio_seconds / 3600:6.3f} h  read {s.read_s:6.2f}  check "
            f"{s.check_s:6.2f}  vocode {s.vocode_s:6.2f}  write {s.write_s:6.2f}  wall {s.wall_s:6.2f} s  "
            f"{rate:7.1f} rows/s  {s.x_realtime:8.0f}x")  # fmt: skip


@dataclass
class Totals:
    """The timed shards' stats, the seconds from the first one's start to the last one's end, process CPU seconds."""

    shards: list[ShardStats]
    wall: float
    cpu: float

    def report(self) -> str:
        sums = ShardStats(shard="total (stage seconds summed)", rows=0, rows_ok=0, audio_seconds=0.0)
        for s in self.shards:
            for name in ("rows", "rows_ok", "audio_seconds", "read_s", "check_s", "vocode_s", "write_s", "wall_s"):
                setattr(sums, name, getattr(sums, name) + getattr(s, name))
        sums.x_realtime = sums.audio_seconds / sums.wall_s if sums.wall_s else 0.0
        audio, rows = sums.audio_seconds, sums.rows
        return "\n".join((
            line(sums),
            f"all shards: {audio / 3600:.3f} h of audio in {self.wall:.2f} s: {rows / self.wall:.0f} rows/s, "
            f"{audio / self.wall:.0f}x real time (one actor; with --engine zero its host side)",
            f"process CPU time {self.cpu:.2f} s: {audio / self.cpu:.0f}x real time per CPU second (compares versions "
            "on a shared machine)",
        ))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("zero", "real"), default="zero")
    parser.add_argument("--preset", default="gsv_v4")
    parser.add_argument("--manifest", default=None, help="a manifest to read (default: a synthetic one of --hours)")
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="mean utterance length of the synthetic rows")
    parser.add_argument("--shard-seconds", type=float, default=600.0, help="input.shard_seconds")
    parser.add_argument("--out", default=None, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--format", default="wav")
    parser.add_argument("--subtype", default="PCM_16")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--checkpoint", default="random")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--overlap", type=int, default=1, help="shards at a time (one device lock)")
    parser.add_argument("--order", choices=("plan", "largest"), default="plan", help="as dealt to one actor")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=15, help="functions per thread in the profile")
    args = parser.parse_args()
    retain_freed_memory()  # as a worker does
    torch.set_flush_denormal(True)
    scratch = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bv-pipeline-"))
    try:
        manifest = manifest_of(args, scratch)
        out = scratch / f"out-{time.time_ns()}"
        profiles = ThreadProfiles() if args.profile else None
        totals = run_all(args, manifest, out, profiles)
        print(totals.report())
        failed = sum(r.rows_failed for r in totals.shards)
        if failed:
            print(f"{failed} rows failed: see {out}/timed/manifest (--out keeps it)")
        if profiles:
            print(profiles.report(args.top))
    finally:
        if not args.out:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
