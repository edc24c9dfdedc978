"""The job's settings as plain Python, read from the Hydra config and checked before any work."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from batchvoc.errors import ConfigError

PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass
class JobSettings:
    """Everything a driver and its actors need; every field maps to one Hydra key (see conf/config.yaml)."""

    manifest: str | None  # input.manifest
    out_dir: str  # output.dir
    preset: str  # model.preset
    checkpoint: str | None  # model.checkpoint
    hparams: dict[str, Any] = field(default_factory=dict)  # model.hparams: overrides of the preset's
    backend: str = "auto"  # engine.backend
    precision: str = "fp16"  # engine.precision
    batch: int = 16  # engine.batch: windows per forward
    window: int | None = None  # engine.window: frames per window (None: the preset's default)
    cache_dir: str | None = None  # engine.cache_dir: compiled-engine caches
    address: str = ""  # cluster.address
    cpu_actors: int = 1  # cluster.cpu_actors
    max_attempts: int = 3  # cluster.max_attempts: tries per shard before it is reported failed
    shard_seconds: float = 600.0  # input.shard_seconds: audio per shard
    fmt: str = "wav"  # output.format
    subtype: str = "PCM_16"  # output.subtype
    mel_scale: str = "ln"  # input.mel_scale: ln | log10 | db | gsv_norm, converted to ln on read
    mel_convention: str = "error"  # check.mel_convention: error | warn | off, for rows that look like another
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config, for summary.json

    @classmethod
    def from_config(cls, cfg: Any) -> JobSettings:
        """From the Hydra DictConfig (or a plain nested dict)."""
        from omegaconf import OmegaConf

        c = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg
        inp, out, model, eng, clu = (c.get(k) or {} for k in ("input", "output", "model", "engine", "cluster"))
        chk = c.get("check") or {}
        settings = cls(
            manifest=inp.get("manifest"),
            out_dir=out.get("dir") or "",
            preset=model.get("preset") or "",
            checkpoint=model.get("checkpoint"),
            hparams=dict(model.get("hparams") or {}),
            backend=eng.get("backend", "auto"),
            precision=eng.get("precision", "fp16"),
            batch=int(eng.get("batch", 16)),
            window=eng.get("window"),
            cache_dir=eng.get("cache_dir"),
            address=clu.get("address") or "",
            cpu_actors=int(clu.get("cpu_actors", 1)),
            max_attempts=int(clu.get("max_attempts", 3)),
            shard_seconds=float(inp.get("shard_seconds", 600.0)),
            fmt=out.get("format", "wav"),
            subtype=out.get("subtype", "PCM_16"),
            mel_scale=inp.get("mel_scale", "ln"),
            mel_convention=chk.get("mel_convention", "error"),
            config=c,
        )
        settings.check()
        return settings

    def check(self) -> None:
        """ConfigError for values that are wrong on their face (files and models are checked by the driver)."""
        if not self.out_dir:
            raise ConfigError("output.dir", "set output.dir=PATH: where wavs/, manifest/, stats/ go")
        if self.precision not in PRECISIONS:
            raise ConfigError("engine.precision", f"{self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.batch < 1:
            raise ConfigError("engine.batch", f"must be at least 1, not {self.batch}")
        if self.window is not None and int(self.window) < 1:
            raise ConfigError("engine.window", f"must be a positive number of frames, not {self.window}")
        if self.cpu_actors < 1:
            raise ConfigError("cluster.cpu_actors", f"must be at least 1, not {self.cpu_actors}")
        from batchvoc.manifest.conventions import MelChecks

        MelChecks(1, scale=self.mel_scale, mode=self.mel_convention)  # ConfigError naming the key
        if self.shard_seconds <= 0:
            raise ConfigError("input.shard_seconds", f"must be positive, not {self.shard_seconds}")

    @property
    def out_path(self) -> Path:
        return Path(self.out_dir).expanduser().resolve()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
