"""The per-device worker: loads the vocoder once, builds its engine once, then works through shards.

Ray runs one per GPU (or `cluster.cpu_actors` on a cluster without GPUs, see runner/actors.py); tests and the
local path use it directly. It knows nothing of Ray. Weights come either from the checkpoint (read here) or from
the driver, which read them once for every actor (`weights`: the model's state dict as numpy arrays, shared
through Ray's object store).

While a shard runs, `progress_state()` answers from another thread: audio seconds vocoded by this process, the
times it began its first shard and wrote its first audio (epoch seconds), its pid.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from batchvoc import storage
from batchvoc.engines.cache import remember_digest, weights_digest
from batchvoc.hostmem import retain_freed_memory
from batchvoc.manifest import Shard
from batchvoc.manifest.conventions import MelChecks
from batchvoc.models import build_model
from batchvoc.models.presets import Preset
from batchvoc.runner.pipeline import run_shard
from batchvoc.runner.stages.vocode import DeviceFeed
from batchvoc.runtime import EngineOptions, assemble, runtime_from_settings
from batchvoc.settings import JobSettings
from batchvoc.sink import ShardSink
from batchvoc.storage import Store

log = logging.getLogger(__name__)


def pick_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class Worker:
    """One device's compiled vocoder and the shard pipeline around it."""

    def __init__(self, settings: JobSettings, name: str = "actor-0", threads: int | None = None,
                 preset: Preset | None = None, weights: SharedWeights | None = None,
                 started: float | None = None):  # fmt: skip
        """`preset` and `weights` (both or neither): the model as the driver loaded it (`load_vocoder`'s preset,
        whose hparams are the model's, and its state dict as numpy arrays); without them the checkpoint is read.
        started: perf_counter() from which ready_s counts (default: now).
        """
        started = time.perf_counter() if started is None else started
        preload("pandas")  # else pyarrow imports it at its first conversion, in a shard's read thread, holding the GIL
        self.vocoded_s, self.first_audio_at, self.first_shard_at = 0.0, None, None
        if threads:
            torch.set_num_threads(threads)
        torch.set_flush_denormal(True)  # denormals slow CPU convolutions 5-10x; no effect on a GPU
        retain_freed_memory()  # stitched audio reuses freed memory instead of faulting fresh pages in
        self.settings, self.name = settings, name
        storage.set_options(settings.storage_options)
        self.device = pick_device()
        if weights is not None and preset is not None:
            options = EngineOptions.from_settings(settings, self.device)
            self.runtime = assemble(model_from_weights(preset, weights), preset, options, started)
        else:
            self.runtime = runtime_from_settings(settings, self.device)
        self.preset, self.engine, self.plan = self.runtime.preset, self.runtime.engine, self.runtime.plan
        self.checks = MelChecks.for_preset(self.preset, settings.mel_scale, settings.mel_convention)
        # the round trip needs the model's real weights: random ones make noise, not speech
        self.checking = settings.checkpoint != "random"
        self.stream = self.runtime.stream(round_trip=self.checking)
        self.feed = DeviceFeed(self.stream)  # shards run at once (the actor's "run" group) share its batches
        self.ready_s = time.perf_counter() - started
        self.load_path = self.engine.load_path  # built | loaded (aoti: a package from engine.cache_dir)
        # DEBUG: the driver says it (its "actor-0 ready in" line), and an actor's info lines reach its console
        log.debug("%s on %s: %s, ready in %.1f s (%s; engine %.1f s of it)", name, self.device_name(),
                  self.engine.describe(), self.ready_s, self.load_path, self.engine.build_s)  # fmt: skip

    def device_name(self) -> str:
        if self.device == "cuda":
            return torch.cuda.get_device_name()
        return f"cpu ({socket.gethostname()}, {torch.get_num_threads()} threads)"

    def info(self) -> dict[str, Any]:
        return dict(actor=self.name, device=self.device_name(), backend=self.engine.backend,
                    precision=self.engine.precision, ready_s=self.ready_s, load_path=self.load_path,
                    pid=os.getpid(), host=socket.gethostname())  # fmt: skip

    def progress_state(self) -> dict[str, Any]:
        """Audio seconds vocoded by this process so far, when it began its first shard and wrote its first audio
        (epoch seconds, None: not yet), its pid."""
        return dict(vocoded_s=self.vocoded_s, first_shard_at=self.first_shard_at, first_audio_at=self.first_audio_at,
                    pid=os.getpid())  # fmt: skip

    def _progress(self, seconds: float, reported: list[float]) -> None:
        """The shard pipeline's hook: `seconds` of audio were just vocoded (reported: the shard's running sum)."""
        if self.first_audio_at is None:
            self.first_audio_at = time.time()
        reported[0] += seconds
        self.vocoded_s += seconds

    def run(self, shard: Shard) -> dict[str, Any]:
        """Vocode one shard into output.dir; returns its stats (ShardStats.to_json()). Shards may run at once in
        several threads: their rows go through one device feed in turn, sharing a batch where one ends and the next
        begins (runner/stages/vocode.py), each reading, checking and writing meanwhile."""
        s = self.settings
        sink = ShardSink(Store(s.out_url, token=s.job_token), shard.name, self.preset.sample_rate, s.fmt, s.subtype,
                         columns=shard.columns)  # fmt: skip
        reported = [0.0]
        info = dict(self._stats_info(), started_at=time.time())  # the report's timeline (epoch seconds)
        self.first_shard_at = self.first_shard_at or info["started_at"]
        stats = run_shard(shard, self.feed, sink, self.checks, max_mel_error=self.max_mel_error(),
                          progress=lambda seconds: self._progress(seconds, reported), info=info).to_json()  # fmt: skip
        if stats.get("rows_ok") and self.first_audio_at is None:
            self.first_audio_at = time.time()
        self.vocoded_s += max(self._shard_audio(shard, stats) - reported[0], 0.0)
        return stats

    def _shard_audio(self, shard: Shard, stats: dict[str, Any]) -> float:
        """A done shard's audio for the progress bar, whatever the pipeline reported per batch (resumed rows
        included): its planned audio in full, or, where its frames were only estimated (no n_frames column), the
        audio it wrote (runner/dealer.AudioTotal counts it so)."""
        if shard.frames_guessed:
            return float(stats.get("audio_seconds", 0.0))
        return shard.frames * self.preset.hop_length / self.preset.sample_rate

    def max_mel_error(self) -> float | None:
        """check.max_mel_error, or None: no suspect verdict (null, or the round trip off for checkpoint=random)."""
        value = self.settings.max_mel_error
        return float(value) if self.checking and value is not None else None

    def _stats_info(self) -> dict[str, Any]:
        p = self.plan
        return dict(device=self.device_name(), backend=self.engine.backend, precision=self.engine.precision,
                    batch=p.batch, chunk=p.chunk_frames, context=p.context, actor=self.name, pid=os.getpid(),
                    ready_s=self.ready_s, load_path=self.load_path)  # fmt: skip


@dataclass(frozen=True)
class SharedWeights:
    """The driver's model for its actors: its state dict as numpy arrays (Ray's object store maps these into each
    actor of a node without a copy) and their weights_digest, so no actor hashes them again."""

    arrays: Mapping[str, np.ndarray]
    digest: str


def preload(module: str) -> threading.Thread | None:
    """Import `module` on a daemon thread of its own, now, where it is installed (pandas is optional: pyarrow
    imports it only if it is there); returns the thread, or None."""
    if importlib.util.find_spec(module) is None:
        return None
    thread = threading.Thread(target=importlib.import_module, args=(module,), name=f"import-{module}", daemon=True)
    thread.start()
    return thread


def model_from_weights(preset: Preset, weights: SharedWeights) -> nn.Module:
    """The generator of `preset` (its hparams) holding `weights`: fp32, eval(), requires_grad False, on CPU.

    The module is made on the meta device (`skeleton`) and takes CPU copies of the arrays as its tensors
    (load_state_dict's assign): no random initialisation that would be thrown away (0.8 s for BigVGAN on the
    H200), no empty tensors filled again. A model with non-persistent buffers (not in a state dict) is built and
    initialised as usual, then the weights copied in."""
    model = skeleton(preset)
    assign = not any(m._non_persistent_buffers_set for m in model.modules())
    if not assign:
        model = build_model(preset, preset.hparams)
    # copies: Ray's object store maps the arrays read-only, and the model's tensors are its own (.float() may keep
    # them as they are)
    state = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in weights.arrays.items()}
    model.load_state_dict(state, strict=True, assign=assign)
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    remember_digest(model, weights.digest)
    return model


def skeleton(preset: Preset) -> nn.Module:
    """The generator of `preset` (its hparams) on the meta device: modules and tensor shapes, no storage, no
    initialisation. Its construction must stay on torch's C++ meta kernels: an op that runs one of torch's Python
    references there (e.g. normal_, or arithmetic on a meta tensor) imports torch._dynamo at its first call, ~1-3 s
    of every actor's start that an aoti package never needs (tests/runner/test_worker.py checks every preset)."""
    with torch.device("meta"):
        return build_model(preset, preset.hparams)


def weights_of(model: nn.Module) -> SharedWeights:
    """The model's state dict as numpy arrays (views, no copy) and its digest (engines/cache.weights_digest)."""
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    return SharedWeights(arrays, weights_digest(model))
