"""The job configuration's schema: Hydra structured configs, the one place where keys, types and defaults live.

The packaged YAML tree (batchvoc/conf/) only picks values per job, model, engine and cluster; every key it or a
command line may set is a field below. `validate` checks a composed config against the schema once, before any
work: an unknown key or a value of the wrong type becomes a ConfigError naming the key (`engine.batch`).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from batchvoc.backends import BACKENDS
from batchvoc.errors import ConfigError

# Optional[...] rather than `X | None`: OmegaConf reads the annotations at runtime (Python 3.10 too)
# ruff: noqa: UP007, UP045

CACHE_DIR = "${oc.env:BATCHVOC_CACHE,${oc.env:HOME,/tmp}/.cache/batchvoc}"
CONFIG_MODULE = "batchvoc.conf"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def conf_options(group: str) -> list[str]:
    """The names of a config group's packaged files (conf/<group>/*.yaml): jobs, presets, ..."""
    folder = resources.files(CONFIG_MODULE) / group
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def key(default: Any, help: str, factory: bool = False,
        choices: tuple[str, ...] | Callable[[], list[str]] | None = None) -> Any:  # fmt: skip
    """A config key: its default and the line `python -m batchvoc --help` shows for it.

    choices: the values a str key takes (or a function listing them), for --help; an Enum key's come from its
    members."""
    metadata: dict[str, Any] = {"help": help}
    if choices is not None:
        metadata["choices"] = choices
    if factory:
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class AudioFormat(str, Enum):
    wav = "wav"
    flac = "flac"


class MelScale(str, Enum):
    """How the input mels were scaled: natural log (the vocoders' own), log10, decibels, GPT-SoVITS' normalised."""

    ln = "ln"
    log10 = "log10"
    db = "db"
    gsv_norm = "gsv_norm"


class MelConvention(str, Enum):
    """What a row whose mel looks like another convention becomes: an error, a warning, or nothing checked."""

    error = "error"
    warn = "warn"
    off = "off"


@dataclass
class InputConf:
    manifest: Optional[str] = key(None, "Parquet file, folder of Parquet files, or glob; local path or fsspec URL")
    shard_seconds: float = key(600.0, "audio per shard: the unit of work, of output files and of restart")
    mel_scale: MelScale = key(MelScale.ln, "the scale the input mels are in (converted to ln before vocoding)")


@dataclass
class OutputConf:
    dir: str = key("outputs/${job_name}", "where audio/, manifest/, stats/, summary.json, report.html go")
    format: AudioFormat = key(AudioFormat.wav, "the audio files' format")
    subtype: str = key("PCM_16", "wav: PCM_16 | PCM_24 | FLOAT; flac: PCM_16 | PCM_24")
    overwrite: bool = key(False, "delete output.dir's outputs, this same job's too, and vocode every row again "
                                 "(false: a rerun resumes the job; another job's outputs stop it)")  # fmt: skip
    retry_failed: bool = key(False, "a rerun vocodes the failed rows of finished shards again (input fixed since)")
    lhotse: bool = key(False, "also write recordings.jsonl.gz, a lhotse RecordingSet of the ok audio")


@dataclass
class ModelConf:
    preset: str = key("hifigan_v1_universal", "the vocoder preset", choices=lambda: conf_options("preset"))
    checkpoint: Optional[str] = key(None, "upstream checkpoint file or folder | pretrained | random (benchmarks only)")
    hparams: dict[str, Any] = key(dict, "overrides of the preset's hyper-parameters", factory=True)


@dataclass
class EngineConf:
    backend: str = key("auto", "the engine (auto: the best available, logged with why)", choices=BACKENDS)
    precision: Precision = key(Precision.fp16, "the engine's precision (fp16 on a CPU computes in fp32)")
    batch: Optional[int] = key(None, "chunks per forward (null: per device, 1 on a CPU, 16 on a GPU)")
    window: Optional[int] = key(None, "frames per chunk (null: per device, rows of 512 frames on a CPU, 10 s on a GPU)")
    cache_dir: str = key(CACHE_DIR, "compiled engines and compile caches")
    options: dict[str, Any] = key(dict, "engine tunables: the keys each backend takes, below", factory=True)


@dataclass
class ClusterConf:
    address: str = key("", "empty: a local Ray (or `ray job submit`'s); join: auto, host:port, ray://host:port")
    cpu_actors: int = key(1, "actors to start where the cluster has no GPU (one per GPU otherwise)")
    max_restarts: int = key(3, "Ray restarts of a dead actor")
    max_task_retries: int = key(3, "Ray retries of a shard whose actor died, or that met a write fault that may pass")


@dataclass
class CheckConf:
    # 0.8 = batchvoc.roundtrip.DEFAULT_MAX_MEL_ERROR (measured there; docs/outputs.md, "The round-trip check")
    max_mel_error: Optional[float] = key(0.8, "round-trip mel error above which a row is `suspect` (null: no verdict)")
    mel_convention: MelConvention = key(MelConvention.error, "rows whose mel looks log10, dB, normalised, [T, n_mels]")


@dataclass
class IoConf:
    storage_options: dict[str, Any] = key(dict, "fsspec options (e.g. endpoint_url, key, secret)", factory=True)


@dataclass
class DemoConf:
    utterances: int = key(8, "utterances the demo manifest holds")
    seconds: float = key(3.0, "seconds per utterance")


@dataclass
class BatchvocConfig:
    """The whole job configuration (`python -m batchvoc job=NAME key=value ...`)."""

    input: InputConf = field(default_factory=InputConf)
    output: OutputConf = field(default_factory=OutputConf)
    model: ModelConf = field(default_factory=ModelConf)
    engine: EngineConf = field(default_factory=EngineConf)
    cluster: ClusterConf = field(default_factory=ClusterConf)
    check: CheckConf = field(default_factory=CheckConf)
    io: IoConf = field(default_factory=IoConf)
    demo: Optional[DemoConf] = key(None, "set by job=demo: vocode a manifest it makes itself")
    job_name: str = key("job", "conf/config.yaml sets it to the job's name (output.dir's default uses it)")
    log_level: str = key("INFO", "the log's level", choices=LOG_LEVELS)


def register() -> None:
    """Put the schema in Hydra's ConfigStore (conf/config.yaml's defaults list starts with it), and the resolver
    conf/config.yaml's hydra.run.dir uses."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="batchvoc_schema", node=schema())
    OmegaConf.register_new_resolver("batchvoc_local", local_folder, replace=True)


def schema() -> DictConfig:
    """The schema as Hydra composes it: its free-form mappings (`free_mappings`) left open.

    Hydra closes the whole composed config (struct mode), mappings typed dict[str, Any] included, so
    `io.storage_options={endpoint_url: ...}` or `engine.options.kernels=opaque` would be refused as unknown keys
    of a mapping that has none. A node's own flag outranks the one it inherits, so these mappings take any key
    (given one by one, with or without a +, or whole) while every other section still refuses unknown keys.
    """
    node = OmegaConf.structured(BatchvocConfig)
    for key in free_mappings(node):
        OmegaConf.set_struct(OmegaConf.select(node, key), False)
    return node


def free_mappings(node: DictConfig | None = None, prefix: str = "") -> list[str]:
    """The dotted keys of the schema's mappings of free keys (dict fields: model.hparams, engine.options, ...)."""
    node = OmegaConf.structured(BatchvocConfig) if node is None else node
    found = []
    for name in node:
        child = node._get_node(name)
        if not isinstance(child, DictConfig) or child._is_none():
            continue
        if OmegaConf.get_type(child) is dict:
            found.append(f"{prefix}{name}")
        else:
            found += free_mappings(child, f"{prefix}{name}.")
    return found


def local_folder(out_dir: str) -> str:
    """Where a job's Hydra logs go: output.dir itself, or for a URL (s3://bucket/x) a local `batchvoc-logs/s3/bucket/x`
    in the working directory (Hydra writes its logs with local file handles)."""
    if "://" not in out_dir:
        return out_dir
    scheme, rest = out_dir.split("://", 1)
    return f"batchvoc-logs/{scheme}/{rest.strip('/')}"


def validate(cfg: Any) -> DictConfig:
    """`cfg` (a composed DictConfig or a nested dict, without the `hydra` node) checked against the schema.

    Returns the typed config. Raises ConfigError naming the first unknown key or value of the wrong type.
    """
    plain = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else dict(cfg)
    plain.pop("hydra", None)
    try:
        typed = OmegaConf.merge(OmegaConf.structured(BatchvocConfig), plain)
    except OmegaConfBaseException as err:
        raise config_error(err) from None
    for key, choices in fixed_choices().items():  # str keys with a fixed set of values (Enum keys OmegaConf checks)
        value = OmegaConf.select(typed, key)
        if value is not None and value not in choices:
            raise ConfigError(key, f"{value!r} is not one of {', '.join(choices)}")
    return typed


def fixed_choices(schema: type = BatchvocConfig, prefix: str = "") -> dict[str, tuple[str, ...]]:
    """The dotted keys whose `key(choices=...)` is a fixed tuple, and those values (a function's list, such as the
    presets', is checked where it is used, with its own message)."""
    found: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(schema):
        if dataclasses.is_dataclass(f.default_factory):  # a section
            found.update(fixed_choices(f.default_factory, f"{prefix}{f.name}."))
        elif isinstance(f.metadata.get("choices"), tuple):
            found[f"{prefix}{f.name}"] = f.metadata["choices"]
    return found


def config_error(err: OmegaConfBaseException) -> ConfigError:
    """An OmegaConf error as a ConfigError on the key it names, in one line."""
    key = getattr(err, "full_key", None) or "config"
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "not in" in text or "Key '" in text and "is not in struct mode" in text:
        section = key.rsplit(".", 1)[0] if "." in key else ""
        return ConfigError(key, f"unknown key{_did_you_mean(key, section)}{_known(section)}")
    if text.startswith("Invalid value ") and ", expected one of [" in text:  # an Enum key: a value, not a type
        return ConfigError(key, _type_message(text))
    if any(w in text for w in ("could not be converted", "Invalid value", "Incompatible value", "is not a valid")):
        return ConfigError(key, f"wrong type: {_type_message(text)}")
    return ConfigError(key, text)


def _node(section: str) -> DictConfig | None:
    """The schema's node at `section` (a dotted key; "" for the root), or None where it has none."""
    node: Any = OmegaConf.structured(BatchvocConfig)
    for part in filter(None, section.split(".")):
        node = node.get(part) if isinstance(node, DictConfig) else None
    return node if isinstance(node, DictConfig) else None


def _did_you_mean(key: str, section: str) -> str:
    """`; did you mean engine.batch?` for a key one slip away from a known one of its section (difflib), else ""."""
    node = _node(section)
    names = [str(k) for k in node.keys()] if node is not None else []
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], names, n=1, cutoff=0.6)
    return f"; did you mean {section + '.' if section else ''}{close[0]}?" if close else ""


def _known(section: str) -> str:
    node = _node(section)
    if node is None:
        return ""
    return f" (known keys{' under ' + section if section else ''}: {', '.join(str(k) for k in node.keys())})"


def _type_message(text: str) -> str:
    """OmegaConf's "Value 'eight' of type 'str' could not be converted to Integer" -> "'eight' is not an integer"."""
    if "could not be converted to" in text and text.startswith("Value "):
        value = text[len("Value ") :].split(" of type ", 1)[0]
        kind = text.rsplit("converted to ", 1)[1].strip().lower()
        return f"{value} is not {'an' if kind[:1] in 'aeiou' else 'a'} {kind}"
    if text.startswith("Value ") and " is not a valid " in text:  # "Value 'maybe' is not a valid bool (type str)"
        return text[len("Value ") :].split(" (type ", 1)[0].replace("a valid ", "a ")
    if text.startswith("Invalid value ") and ", expected one of [" in text:
        value, choices = text[len("Invalid value ") :].split(", expected one of [", 1)
        return f"{value} is not one of {choices.rstrip(']')}"
    return text
