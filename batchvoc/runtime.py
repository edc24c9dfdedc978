"""The one runtime builder: preset + checkpoint + engine options -> a ready engine and its chunking plan.

The worker, the bench and the build command all assemble the pipeline here, and only here:

    options = EngineOptions(backend="auto", precision="fp16", batch=16, cache_dir="/cache")
    rt = build_runtime("gsv_v4", "/ckpt/vocoder.pth", options)      # or runtime_from_settings(job_settings)
    rt.plan      # ChunkPlan: chunk_frames W, context C (= the model's receptive field), batch B, log-mel floor, hop
    rt.engine(mel [B, n_mels, W + 2C] float32, valid [B, 2, W + 2C] int64) -> audio [B, (W + 2C) * hop] float32
    rt.ready_s, rt.engine.load_path    # seconds from the call to a warmed-up engine; "built" | "loaded"

`assemble(model, preset, options)` does the same for a model already loaded (the bench builds several engines of
one model). Engine tunables are options, never module globals: `EngineOptions.tunables`, from the config's
`engine.options` (see TUNABLES for which backend takes which).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from batchvoc.backends import TUNABLES, check_cache_dir, option_value
from batchvoc.chunking import ROW_LENGTH, ChunkPlan
from batchvoc.device_defaults import default_batch, default_row_length
from batchvoc.engines import Engine, build_engine, check_backend
from batchvoc.errors import JOB_KEYS, ConfigError, Keys
from batchvoc.models import load_vocoder
from batchvoc.models.presets import Preset
from batchvoc.roundtrip import RoundTrip
from batchvoc.stream import VocoderStream


def plan_chunks(model: nn.Module, preset: Preset, batch: int, chunk_frames: int | None = None,
                length: int = ROW_LENGTH) -> ChunkPlan:  # fmt: skip
    """The ChunkPlan of model: context = model.receptive_field(); chunk_frames None picks `chunk_frames_for`
    (rows of `length` frames)."""
    return ChunkPlan.for_model(model.receptive_field(), batch, preset.silence, preset.hop_length, chunk_frames, length)


@dataclass(frozen=True)
class EngineOptions:
    """How to build the engine: backend (auto | tensorrt | aoti | inductor | eager), precision (fp32 | fp16 |
    bf16), batch (rows per forward), chunk_frames (None: the default for the model's context), device (auto: the
    CUDA GPU when there is one, else cpu; or cpu | cuda | cuda:N), cache_dir (packages and compile caches) and
    tunables (backend options, TUNABLES)."""

    backend: str = "auto"
    precision: str = "fp16"
    batch: int | None = None  # None: per device (batchvoc/device_defaults.py)
    chunk_frames: int | None = None
    device: str = "auto"
    cache_dir: str | None = None
    tunables: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Any, device: str = "auto") -> EngineOptions:
        """From a JobSettings (engine.backend / precision / batch / window / cache_dir / options). A job's inductor
        engines compile with mode "default" and its aoti engines run without CUDA graphs unless engine.options.mode
        / cuda_graphs say otherwise: its actors call the engine from a device thread of their own
        (runner/stages/vocode.DeviceFeed), where the CUDA graphs that small batches take elsewhere
        (engines/cuda_graph.graphs_pay) were not measured."""
        return cls(
            backend=settings.backend,
            precision=settings.precision,
            batch=None if settings.batch is None else int(settings.batch),
            chunk_frames=getattr(settings, "chunk_frames", None) or getattr(settings, "window", None),
            device=device,
            cache_dir=settings.cache_dir,
            tunables={"mode": "default", "cuda_graphs": False, **(getattr(settings, "engine_options", None) or {})},
        )

    def check(self) -> None:
        """ConfigError naming the key for an unknown backend, precision, device, option, a bad batch size or a
        cache_dir this node cannot write."""
        check_backend(self.backend, self.precision, self.tunables)
        if self.batch is not None and int(self.batch) < 1:
            raise ConfigError("engine.batch", f"must be at least 1, not {self.batch}")
        if self.chunk_frames is not None and int(self.chunk_frames) < 1:
            raise ConfigError("engine.window", f"must be a positive number of frames, not {self.chunk_frames}")
        resolve_device(self.device)
        check_cache_dir(self.cache_dir)


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when CUDA is available, else cpu; ConfigError (engine.device) for a GPU that is not there."""
    if name in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError("engine.device", f"{name!r} is not a device: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("engine.device", f"{name} asked for but CUDA is not available")
    return device


def backend_options(backend: str, tunables: Mapping[str, Any]) -> dict[str, Any]:
    """The tunables this backend takes (numbers from the command line made ints); others are dropped, so one
    engine.options works with `auto` whichever backend it picks. ConfigError for a bad value (backends.option_value)."""
    keys = TUNABLES.get(backend, ())
    return {k: option_value(k, v) for k, v in tunables.items() if k in keys and v is not None}


@dataclass
class Runtime:
    """A ready vocoder stream's parts: the model (fp32, CPU), its preset, the engine, the chunking plan and how
    long the build took (ready_s: the builder's call to a warmed-up engine, loading the checkpoint included when
    build_runtime loaded it)."""

    model: nn.Module
    preset: Preset
    engine: Engine
    plan: ChunkPlan
    device: torch.device
    ready_s: float

    @property
    def load_path(self) -> str:
        """Either "built" (compiled or set up in this process) or "loaded" (a package from engine.cache_dir)."""
        return self.engine.load_path

    def stream(self, round_trip: bool = False) -> VocoderStream:
        """The vocoder stream of this runtime: its engine and chunking plan at the preset's sample rate, with the
        round-trip check on the engine's device when round_trip (it needs the model's real weights)."""
        check = RoundTrip(self.preset, self.engine.device) if round_trip else None
        return VocoderStream(self.engine, self.plan, self.preset.sample_rate, check)

    def describe(self) -> str:
        p = self.plan
        return (f"{self.preset.name}: {self.engine.describe()}; chunks of {p.chunk_frames} + 2 x {p.context} "
                f"frames, batch {p.batch}; ready in {self.ready_s:.1f} s ({self.load_path})")  # fmt: skip


def plan_for(model: nn.Module, preset: Preset, options: EngineOptions) -> ChunkPlan:
    """The ChunkPlan a runtime of these options uses: batch and row length per device where options leave them
    None (batchvoc/device_defaults.py)."""
    device = resolve_device(options.device)
    batch = options.batch or default_batch(device)
    return plan_chunks(model, preset, batch, options.chunk_frames, default_row_length(device, preset.frame_rate))


def assemble(model: nn.Module, preset: Preset, options: EngineOptions, started: float | None = None,
             shape: tuple[int, int] | None = None, keys: Keys = JOB_KEYS) -> Runtime:  # fmt: skip
    """A Runtime of an already loaded model (see module doc). started: perf_counter() at which ready_s starts
    (default: now); shape: the engine's (B, T) when not the plan's (the bench's unchunked rows); keys: how its log
    lines name the settings (errors.API_KEYS: the Python API's keywords). Raises
    ConfigError for bad options; the backend's errors as they come."""
    started = time.perf_counter() if started is None else started
    options.check()
    device = resolve_device(options.device)
    plan = plan_for(model, preset, options)
    backend = options.backend
    if backend == "auto":
        from batchvoc.engines import choose_backend

        backend = choose_backend(device)[0]
    engine = build_engine(model, preset, options.backend, options.precision, device, [shape or plan.shape],
                          options.cache_dir, keys, **backend_options(backend, options.tunables))  # fmt: skip
    return Runtime(model, preset, engine, plan, device, time.perf_counter() - started)


def build_runtime(preset: str, checkpoint: str | None, options: EngineOptions | None = None,
                  hparams: Mapping[str, Any] | None = None, keys: Keys = JOB_KEYS) -> Runtime:  # fmt: skip
    """Load the vocoder (models.load_vocoder: ConfigError for a missing checkpoint or unknown preset) and
    assemble its Runtime; ready_s counts from this call."""
    started = time.perf_counter()
    options = options or EngineOptions()
    options.check()
    model, loaded = load_vocoder(preset, checkpoint, dict(hparams or {}), keys)
    return assemble(model, loaded, options, started, keys=keys)


def runtime_from_settings(settings: Any, device: str = "auto") -> Runtime:
    """build_runtime for a job's settings (model.preset / checkpoint / hparams, the engine group)."""
    options = EngineOptions.from_settings(settings, device)
    return build_runtime(settings.preset, settings.checkpoint, options, settings.hparams)
