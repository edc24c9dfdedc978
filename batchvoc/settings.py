"""The job's settings as plain Python, read from the validated Hydra config and checked before any work.

`JobSettings` is what the driver and its actors receive (picklable, no OmegaConf). Each field maps to one config
key (`KEYS`); its default is the schema's (batchvoc/config.py), so defaults live in one place.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from batchvoc.config import CheckConf, ClusterConf, EngineConf, InputConf, OutputConf, validate
from batchvoc.errors import ConfigError
from batchvoc.storage import is_url

PRECISIONS = ("fp32", "fp16", "bf16")

# JobSettings field -> config key. A new setting is a schema field, a JobSettings field and a line here.
KEYS: dict[str, str] = {
    "manifest": "input.manifest",
    "out_dir": "output.dir",
    "preset": "model.preset",
    "checkpoint": "model.checkpoint",
    "hparams": "model.hparams",
    "backend": "engine.backend",
    "precision": "engine.precision",
    "batch": "engine.batch",
    "window": "engine.window",
    "cache_dir": "engine.cache_dir",
    "engine_options": "engine.options",
    "address": "cluster.address",
    "cpu_actors": "cluster.cpu_actors",
    "max_restarts": "cluster.max_restarts",
    "max_task_retries": "cluster.max_task_retries",
    "shard_seconds": "input.shard_seconds",
    "mel_scale": "input.mel_scale",
    "fmt": "output.format",
    "subtype": "output.subtype",
    "overwrite": "output.overwrite",
    "retry_failed": "output.retry_failed",
    "lhotse": "output.lhotse",
    "max_mel_error": "check.max_mel_error",
    "mel_convention": "check.mel_convention",
    "storage_options": "io.storage_options",
}


def _v(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


@dataclass
class JobSettings:
    """Everything a driver and its actors need; every field maps to one config key (see `KEYS`)."""

    manifest: str | None  # input.manifest
    out_dir: str  # output.dir
    preset: str  # model.preset
    checkpoint: str | None  # model.checkpoint
    hparams: dict[str, Any] = field(default_factory=dict)  # model.hparams: overrides of the preset's
    backend: str = EngineConf.backend  # engine.backend
    precision: str = _v(EngineConf.precision)  # engine.precision
    batch: int | None = EngineConf.batch  # engine.batch: chunks per forward (None: per device)
    window: int | None = EngineConf.window  # engine.window: frames per chunk (None: the preset's default)
    cache_dir: str | None = None  # engine.cache_dir: compiled-engine caches (None: the engine's default)
    engine_options: dict[str, Any] = field(default_factory=dict)  # engine.options: engine tunables
    address: str = ClusterConf.address  # cluster.address
    cpu_actors: int = ClusterConf.cpu_actors  # cluster.cpu_actors
    max_restarts: int = ClusterConf.max_restarts  # cluster.max_restarts: Ray restarts of a dead actor
    max_task_retries: int = ClusterConf.max_task_retries  # cluster.max_task_retries: Ray retries of a shard
    shard_seconds: float = InputConf.shard_seconds  # input.shard_seconds: audio per shard
    mel_scale: str = _v(InputConf.mel_scale)  # input.mel_scale: ln | log10 | db | gsv_norm
    fmt: str = _v(OutputConf.format)  # output.format
    subtype: str = OutputConf.subtype  # output.subtype
    overwrite: bool = OutputConf.overwrite  # output.overwrite: delete output.dir's outputs (any job's) and start clean
    retry_failed: bool = OutputConf.retry_failed  # output.retry_failed: finished shards' failed rows again
    lhotse: bool = OutputConf.lhotse  # output.lhotse: also write recordings.jsonl.gz (lhotse RecordingSet)
    max_mel_error: float | None = CheckConf.max_mel_error  # check.max_mel_error (None: no round-trip limit)
    mel_convention: str = _v(CheckConf.mel_convention)  # check.mel_convention: error | warn | off
    storage_options: dict[str, Any] = field(default_factory=dict)  # io.storage_options: fsspec options
    job_token: str = ""  # no key: set by the driver when it takes the job lock; marks this job's temp files
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config, for summary.json

    @classmethod
    def from_config(cls, cfg: Any) -> JobSettings:
        """From the Hydra DictConfig (or a plain nested dict), validated against the schema first.

        Raises ConfigError naming the key of an unknown key, a value of the wrong type or a value out of range.
        """
        from omegaconf import OmegaConf

        typed = validate(cfg)
        plain = OmegaConf.to_container(typed, resolve=True, enum_to_str=True)
        values = {name: OmegaConf.select(typed, key) for name, key in KEYS.items()}
        values = {name: _v(value) for name, value in values.items()}
        for name in ("hparams", "engine_options", "storage_options"):
            values[name] = OmegaConf.to_container(values[name], resolve=True) if values[name] is not None else {}
        values["out_dir"] = values["out_dir"] or ""
        values["preset"] = values["preset"] or ""
        values["address"] = values["address"] or ""
        settings = cls(**values, config=plain)
        settings.check()
        return settings

    def as_config(self) -> dict[str, Any]:
        """The resolved config for summary.json: Hydra's where the job came through it, else these settings nested
        by their config keys (a JobSettings made in Python has no Hydra config); io.storage_options' secrets
        (keys, tokens, passwords: `redacted`) never go into it: output.dir may be a bucket others read."""
        nested = self._nested() if not self.config else {**self.config}
        if isinstance(nested.get("io"), dict) and isinstance(nested["io"].get("storage_options"), dict):
            nested["io"] = {**nested["io"], "storage_options": redacted(nested["io"]["storage_options"])}
        return nested

    def _nested(self) -> dict[str, Any]:
        nested: dict[str, Any] = {}
        for name, key in KEYS.items():
            *groups, leaf = key.split(".")
            node = nested
            for group in groups:
                node = node.setdefault(group, {})
            value = getattr(self, name)
            node[leaf] = str(value) if isinstance(value, Path) else value
        return nested

    def check(self) -> None:
        """ConfigError for values that are wrong on their face (files and models are checked by the driver)."""
        if not self.out_dir:
            raise ConfigError("output.dir", "set output.dir=PATH: where audio/, manifest/, stats/ go")
        if self.precision not in PRECISIONS:
            raise ConfigError("engine.precision", f"{self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.batch is not None and self.batch < 1:
            raise ConfigError("engine.batch", f"must be at least 1, not {self.batch}")
        if self.window is not None and int(self.window) < 1:
            raise ConfigError("engine.window", f"must be a positive number of frames, not {self.window}")
        if self.cpu_actors < 1:
            raise ConfigError("cluster.cpu_actors", f"must be at least 1, not {self.cpu_actors}")
        for name in ("max_restarts", "max_task_retries"):
            if getattr(self, name) < 0:
                raise ConfigError(KEYS[name], f"must be 0 or more, not {getattr(self, name)}")
        from batchvoc.manifest.conventions import MelChecks

        MelChecks(1, scale=self.mel_scale, mode=self.mel_convention)  # ConfigError naming the key
        if self.shard_seconds <= 0:
            raise ConfigError("input.shard_seconds", f"must be positive, not {self.shard_seconds}")
        if self.max_mel_error is not None and self.max_mel_error <= 0:
            raise ConfigError("check.max_mel_error", f"must be positive (or null), not {self.max_mel_error}")

    @property
    def out_path(self) -> Path:
        """output.dir as a local folder (for a URL use `out_url`)."""
        if is_url(self.out_dir):
            raise ValueError(f"output.dir {self.out_dir} is a URL, not a local folder")
        return Path(self.out_dir).expanduser().resolve()

    @property
    def out_url(self) -> str:
        """output.dir as given for a URL (s3://bucket/run, without a trailing /), else the absolute local path."""
        return self.out_dir.rstrip("/") if is_url(self.out_dir) else str(self.out_path)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SECRET_WORDS = ("key", "secret", "token", "password", "passwd", "credential", "auth", "signature")


def redacted(options: Any) -> Any:
    """fsspec options with the values of secret-looking names (key, secret, token, password, credentials, ...:
    SECRET_WORDS in the name, any case) replaced by "<redacted>", at any depth (client_kwargs, config_kwargs)."""
    if isinstance(options, dict):
        return {name: _secret(name, value) or redacted(value) for name, value in options.items()}
    if isinstance(options, list):
        return [redacted(value) for value in options]
    return options


def secret_values(options: Any, hidden: bool = False) -> set[str]:
    """The values (as text) that `redacted` hides in fsspec options: every scalar under a secret-looking name."""
    if isinstance(options, dict):
        return {v for name, value in options.items() for v in secret_values(value, hidden or _named_secret(name))}
    if isinstance(options, list):
        return {v for value in options for v in secret_values(value, hidden)}
    return {str(options)} if hidden and not isinstance(options, (bool, type(None))) and str(options) else set()


def hide_secrets(text: str, values: set[str]) -> str:
    """text with each of `values` (secret_values) that stands alone, not inside a longer word, as "<redacted>":
    for what records a config as text (Hydra's .hydra/*.yaml, a sweep's multirun.yaml, log lines)."""
    if not values:
        return text
    alone = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    return re.sub(rf"(?<![\w/+=])(?:{alone})(?![\w/+=])", "<redacted>", text)


def _named_secret(name: Any) -> bool:
    return any(word in str(name).lower() for word in SECRET_WORDS)


def _secret(name: Any, value: Any) -> str | None:
    """The value recorded for a secret-looking name: "<redacted>" (not for a flag or None: `anon: false`), else None."""
    if isinstance(value, (bool, type(None))) or not _named_secret(name):
        return None
    return "<redacted>"
