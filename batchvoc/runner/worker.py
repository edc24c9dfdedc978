"""The per-device worker: loads the vocoder once, builds its engine once, then works through shards.

Ray runs one per GPU (or `cluster.cpu_actors` on a cluster without GPUs); tests and the local path use it
directly. It knows nothing of Ray.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

import torch

from batchvoc.hostmem import retain_freed_memory
from batchvoc.manifest import Shard
from batchvoc.manifest.conventions import MelChecks
from batchvoc.runner.shard import Packing, run_shard
from batchvoc.runtime import runtime_from_settings
from batchvoc.settings import JobSettings
from batchvoc.sink import ShardSink

log = logging.getLogger(__name__)


def pick_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class Worker:
    """One device's compiled vocoder and the shard pipeline around it."""

    def __init__(self, settings: JobSettings, name: str = "actor-0", threads: int | None = None):
        started = time.perf_counter()
        if threads:
            torch.set_num_threads(threads)
        torch.set_flush_denormal(True)  # denormals slow CPU convolutions 5-10x; no effect on a GPU
        retain_freed_memory()  # stitched audio reuses freed memory instead of faulting fresh pages in
        self.settings, self.name = settings, name
        self.device = pick_device()
        self.runtime = runtime_from_settings(settings, self.device)
        self.preset, self.engine, plan = self.runtime.preset, self.runtime.engine, self.runtime.plan
        self.checks = MelChecks.for_preset(self.preset, settings.mel_scale, settings.mel_convention)
        self.packing = Packing(plan.chunk_frames, plan.context, plan.batch, plan.log_mel_floor, plan.hop)
        self.startup_s = time.perf_counter() - started
        log.info("%s on %s: %s, ready in %.1f s", name, self.device_name(), self.engine.describe(), self.startup_s)

    def device_name(self) -> str:
        if self.device == "cuda":
            return torch.cuda.get_device_name()
        return f"cpu ({socket.gethostname()}, {torch.get_num_threads()} threads)"

    def info(self) -> dict[str, Any]:
        return dict(actor=self.name, device=self.device_name(), backend=self.engine.backend,
                    precision=self.engine.precision, startup_s=self.startup_s, ready_s=self.startup_s,
                    load_path=self.engine.load_path, pid=os.getpid())  # fmt: skip

    def run(self, shard: Shard) -> dict[str, Any]:
        """Vocode one shard into output.dir; returns its stats."""
        s = self.settings
        sink = ShardSink(s.out_path, shard.name, self.preset.sample_rate, s.fmt, s.subtype)
        extra = dict(self._stats_extra(), started_at=time.time())  # the report's timeline (epoch seconds)
        stats = run_shard(shard, self.engine, self.packing, sink, self.checks, extra=extra)
        return stats

    def _stats_extra(self) -> dict[str, Any]:
        p = self.packing
        return dict(device=self.device_name(), backend=self.engine.backend, precision=self.engine.precision,
                    batch=p.batch, window=p.window, context=p.context, actor=self.name,
                    ready_s=self.startup_s, load_path=self.engine.load_path)  # fmt: skip
