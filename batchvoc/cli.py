"""What `python -m batchvoc` does before Hydra takes over: help, and one check of every job's configuration.

Hydra composes the config after it has made its run folder under output.dir, and reports a bad override in
several lines. So the command line is checked here first, with Hydra's own compose API: every job of a sweep
composed, validated against the schema (batchvoc/config.py) and its output.dir checked, each fault one line
naming the key.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import tempfile
import typing
from dataclasses import MISSING, fields, is_dataclass
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

from batchvoc.backends import BOOLEANS, CHOICES, INTEGERS, TILE_KEYS, TUNABLES, check_names
from batchvoc.config import CONFIG_MODULE, BatchvocConfig, conf_options, config_error, register, validate
from batchvoc.errors import ConfigError, first_line

HELP_FLAGS = ("-h", "--help")
# Hydra flags after which the command does not run a job (it shows something), or runs one from configs of the
# user's own (another config path, name or dir): nothing is checked here; the job validates its own config
SHOW_FLAGS = ("--cfg", "-c", "--info", "-i", "--hydra-help", "--shell-completion", "-sc", "--resolve", "-p")
OWN_CONFIG_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun")
MULTIRUN_FLAGS = ("-m", "--multirun")
SUBMITTED_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray's job supervisor for a submitted job's entrypoint


def overrides_of(argv: list[str]) -> list[str]:
    """The key=value arguments of a command line (flags and their values left out)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in OWN_CONFIG_FLAGS:
            skip = True
        elif not arg.startswith("-"):
            out.append(arg)
    return out


def sweep_jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override list of each job the command runs: one, or (with -m) one per combination of sweep values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as err:  # Hydra's OverrideParseException and friends: one line naming the argument
        raise ConfigError("command line", first_line(err)) from None
    choices = []
    for override in parsed:
        if override.is_sweep_override():
            key = override.get_key_element()
            if not multirun:
                raise ConfigError(key.lstrip("+~"), f"{override.input_line!r} sweeps: add -m to run one job each")
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    return [list(job) for job in itertools.product(*choices)]


def check_command_line(argv: list[str]) -> list[Any]:
    """Compose, validate and check output.dir for every job the command line runs; returns their configs ([] where
    Hydra is asked to show something instead). Raises ConfigError on the first fault."""
    if any(arg in SHOW_FLAGS or arg.split("=", 1)[0] in OWN_CONFIG_FLAGS for arg in argv):
        return []
    multirun = any(arg in MULTIRUN_FLAGS for arg in argv)
    overrides = [o for o in overrides_of(argv) if not o.lstrip("+~").startswith("hydra")]
    configs = []
    jobs = sweep_jobs(overrides, multirun)
    for number, job in enumerate(jobs):
        try:
            cfg = compose(job)
        except ConfigError as err:  # a swept value of the wrong type or an unknown name: which job, as check_sweep
            if len(jobs) < 2:
                raise
            raise ConfigError(err.key, f"{err.message} (job {number} of the sweep)", err.shown) from None
        check_submitted_output(str(cfg.output.dir))
        check_output_dir(str(cfg.output.dir))
        configs.append(cfg)
    return configs


def check_submitted_output(out_dir: str) -> None:
    """Under `ray job submit` the working directory is Ray's temporary copy of ours: outputs must go elsewhere."""
    if os.environ.get(SUBMITTED_JOB_ENV) and "://" not in out_dir and not Path(out_dir).expanduser().is_absolute():
        raise ConfigError(
            "output.dir",
            f"a submitted job needs output.dir=PATH, an absolute path on storage every node sees (or a URL); "
            f"{out_dir!r} would land in Ray's temporary working directory and be lost",
        )


def compose(overrides: list[str], resolve: bool = True) -> Any:
    """The validated config of one job (hydra node left out). Raises ConfigError naming the key.

    resolve=False: the typed config as composed, interpolations (output.dir's ${job_name}) left as they are and
    the values not checked beyond their types (what --help shows of each job)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)  # so ${hydra:runtime.choices.job} resolves
            with open_dict(cfg):
                job_name = cfg.hydra.runtime.choices.get("job")
                del cfg["hydra"]
                cfg.job_name = job_name
            typed = validate(cfg)
            if not resolve:
                return typed
            OmegaConf.resolve(typed)
            check_names(typed.engine.backend, typed.engine.precision, typed.engine.options)  # values too, no torch
            check_preset(typed.model.preset)
            return typed
    except OmegaConfBaseException as err:
        raise config_error(err) from None
    except HydraException as err:
        raise _hydra_error(err) from None
    finally:
        GlobalHydra.instance().clear()


def _hydra_error(err: Exception) -> ConfigError:
    """Hydra's composition error (its cause, when OmegaConf's, names the key) as one line."""
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err.__cause__, OmegaConfBaseException):
        return config_error(err.__cause__)
    text = " ".join(str(err).split())
    if "You must specify 'job'" in text:
        return ConfigError("job", f"pick a job: job=NAME, one of {', '.join(job_names())}")
    if "Could not find '" in text and "/" in text:  # "Could not find 'job/nope'" -> the group's key
        group, name = text.split("Could not find '", 1)[1].split("'", 1)[0].split("/", 1)
        return ConfigError(group, f"no {group} called {name!r}; options: {', '.join(conf_options(group))}")
    if "Could not override '" in text:
        key = text.split("Could not override '", 1)[1].split("'", 1)[0]
        return ConfigError(key, "unknown key")
    return ConfigError("config", text)


def check_output_dir(out_dir: str) -> None:
    """ConfigError on output.dir when a job could not write there: a file, a dangling link, read-only, not creatable.

    URLs (s3://, gs:// ...) are checked by the storage layer when the job starts.
    """
    if "://" in out_dir:
        return
    path = Path(out_dir).expanduser()
    if path.is_symlink() and not path.exists():
        raise ConfigError("output.dir", f"{path} is a link to {os.readlink(path)}, which does not exist")
    probe, missing = path, []
    while not probe.exists():  # the nearest folder that exists is where the job's folders will be made
        if probe.is_symlink():
            raise ConfigError("output.dir", f"{probe} is a link to {os.readlink(probe)}, which does not exist")
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():
        what = "is a file" if probe == path else f"cannot be made: {probe} is a file"
        raise ConfigError("output.dir", f"{path} {what}; set output.dir to a folder")
    try:  # make it and write in it: what the job will do first (Hydra's log folder goes there)
        path.mkdir(parents=True, exist_ok=True)
        _made_folders.extend(missing)  # deepest first
        with tempfile.NamedTemporaryFile(dir=path, prefix=".batchvoc-write-test-"):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        message = f"cannot write to {path} ({reason}); set output.dir to a folder you can write"
        raise ConfigError("output.dir", message) from None


_made_folders: list[Path] = []  # the folders check_output_dir made, each below the one it made it in


def remove_made_folders() -> None:
    """Remove the folders check_output_dir made that are still empty: a command refused before its jobs run
    leaves no output.dir behind (nor its parents, where it made them)."""
    for folder in _made_folders:  # deepest first: a parent is empty once its new child is gone
        try:
            folder.rmdir()
        except OSError:  # something was written there (or it is gone): keep it
            pass
    _made_folders.clear()


def job_names() -> list[str]:
    return conf_options("job")


def check_preset(name: str) -> None:
    """ConfigError on model.preset for a name conf/preset/ has no file for (models/presets.py, without torch)."""
    known = conf_options("preset")
    if name not in known:
        raise ConfigError("model.preset", f"unknown preset {name!r}; known presets: {', '.join(known)}")


def _job_line(name: str, group: str = "job") -> str:
    """The first sentence of conf/<group>/NAME.yaml's leading comment (after `# @package`), however many lines."""
    text = (resources.files(CONFIG_MODULE) / group / f"{name}.yaml").read_text()
    words: list[str] = []
    for line in text.splitlines():
        if "@package" in line:
            continue
        line = line.lstrip("# ").strip() if line.startswith("#") else None
        if not line or line.startswith("python "):  # the comment ended, or its example command begins
            break
        words.append(line)
        if line.endswith("."):
            break
    sentence = " ".join(words)
    first = re.split(r"(?<![.])[.]\s", sentence, maxsplit=1)[0]  # a sentence's end, not an ellipsis
    return first.rstrip(".") + "." if first else ""


def _keys(node: Any, prefix: str = "") -> list[tuple[str, str, str, list[str]]]:
    """(key, default, help, choices) of every schema field, in order. choices: an Enum key's members' values, or
    the values its `key(choices=...)` names (a list or a function giving one); [] for a key of free values."""
    rows = []
    types = typing.get_type_hints(node)
    for f in fields(node):
        key = f"{prefix}{f.name}"
        if f.default_factory is not MISSING and is_dataclass(f.default_factory):
            rows += _keys(f.default_factory, key + ".")
            continue
        default = f.default if f.default_factory is MISSING else f.default_factory()
        rows.append((key, _shown(default), f.metadata.get("help", ""), _choices(types[f.name], f.metadata)))
    return rows


def _shown(value: Any) -> str:
    """A key's value as --help writes it: an Enum by its value, None as null, an empty mapping as {}."""
    value = getattr(value, "value", value)
    return "null" if value is None else "{}" if value == {} else str(value)


def _choices(kind: Any, metadata: Any) -> list[str]:
    """The values a key of type `kind` takes: an Enum's (Optional[...] unwrapped), else metadata's `choices`."""
    for candidate in (kind, *typing.get_args(kind)):
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return [str(member.value) for member in candidate]
    given = metadata.get("choices")
    return list(given() if callable(given) else given or [])


def job_defaults() -> dict[str, dict[str, list[str]]]:
    """The keys whose value depends on the job: key -> {value as shown: the packaged jobs that give it}, for each
    key (of single values) some job sets to another value than another job or the schema does."""
    schema = {k: d for k, d, _, _ in _keys(BatchvocConfig)}
    by_key: dict[str, dict[str, list[str]]] = {}
    from omegaconf import OmegaConf

    for name in job_names():
        plain = OmegaConf.to_container(compose([f"job={name}"], resolve=False), resolve=False, enum_to_str=True)
        for key in schema:
            value = _select(plain, key)
            if not isinstance(value, (dict, list)):
                by_key.setdefault(key, {}).setdefault(_shown(value), []).append(name)
    return {k: values for k, values in by_key.items() if set(values) != {schema[k]}}


def _select(plain: dict[str, Any], key: str) -> Any:
    """A plain config's value at dotted `key` (None where a section is null)."""
    for part in key.split("."):
        plain = plain.get(part) if isinstance(plain, dict) else None
    return plain


def _key_line(key: str, default: str, help: str, choices: list[str], per_job: dict[str, list[str]] | None) -> str:
    """One key of --help: its help, its choices, its default (or each packaged job's value, where they differ)."""
    text = f"{help}; one of {', '.join(choices)}" if choices else help
    if per_job:
        default = "per job: " + "; ".join(f"{value} ({', '.join(jobs)})" for value, jobs in per_job.items())
    return f"  {key:25} {text} [{default}]"


def group_default(group: str) -> str:
    """The option conf/config.yaml's defaults list picks for a config group."""
    from omegaconf import OmegaConf

    conf = OmegaConf.create((resources.files(CONFIG_MODULE) / "config.yaml").read_text())
    return next(str(entry[group]) for entry in conf.defaults if not isinstance(entry, str) and group in entry)


# what an unset on-or-off option means (engines/__init__.cudnn_benchmark, engines/cuda_graph.graphs_pay, runtime.py)
BOOLEAN_DEFAULTS = {
    "cudnn_benchmark": "on, off for aoti: cuDNN's algorithm timing at the first call",
    "cuda_graphs": "on for engines of up to 8 rows per batch on a GPU outside a job, off in a job",
}


def _option_values(option: str) -> str:
    """What an engine option takes, from backends.py's CHOICES, BOOLEANS, INTEGERS and tile table keys."""
    if option in BOOLEANS:
        return f"true or false (unset: {BOOLEAN_DEFAULTS.get(option, 'the backend decides')})"
    if option in CHOICES:
        return f"one of {', '.join(CHOICES[option])}"
    if option in INTEGERS:
        low, high = INTEGERS[option]
        return f"an integer, {low} or more" if high is None else f"an integer, {low} to {high}"
    if option == "tile_table":
        return f'{{"C_IN,KSIZE,ACT": {{{", ".join(TILE_KEYS)}: int}}}}, or a JSON file of that'
    return "a value"


def option_lines() -> list[str]:
    """--help's engine.options: each option (backends.py TUNABLES) with the backends that take it and its values."""
    takers: dict[str, list[str]] = {}
    for backend, options in TUNABLES.items():
        for option in options:
            takers.setdefault(option, []).append(backend)
    return [f"  {option:25} {', '.join(names)}; {_option_values(option)}" for option, names in takers.items()]


def help_text() -> str:
    """`python -m batchvoc --help`: usage, the packaged jobs, and every key with its choices and its default (each
    job's value where the jobs set it)."""
    jobs = "\n".join(f"  {name:12} {_job_line(name)}" for name in job_names())
    clusters = "\n".join(f"  {name:12} {_job_line(name, 'cluster')}" for name in conf_options("cluster"))
    cluster = group_default("cluster")
    options = "\n".join(option_lines())
    per_job = job_defaults()
    keys = "\n".join(_key_line(k, d, h, c, per_job.get(k)) for k, d, h, c in _keys(BatchvocConfig) if k != "job_name")
    return f"""batchvoc: vocode Parquet mel manifests into audio files with a compiled vocoder on Ray.

usage:
  python -m batchvoc job=NAME [key=value ...]       run one job
  python -m batchvoc -m job=NAME key=a,b [...]      a sweep: one job per value, job N into output.dir/N
  python -m batchvoc job=NAME --cfg job             show the composed configuration and stop

jobs:
{jobs}

clusters (cluster=NAME) [{cluster}]:
{clusters}

keys (choices, [default]; [per job: ...]: the value each job=NAME gives, a key=value overrides it):
{keys}

engine.options (engine.options.KEY=VALUE; the backends that take each key, auto: those of the backend it picks):
{options}

Exit code: 0 every row ok, 2 some rows failed or suspect, 1 the job could not run (worst of a sweep's jobs).
Hydra's own options: --hydra-help."""


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class _NoColour(logging.Filter):
    """Drops ANSI colour codes from a record (Ray colours its dashboard link and CLI hints)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "\x1b[" in message:
            record.msg, record.args = ANSI.sub("", message), ()
        return True


class _Uncoloured:
    """A text stream that drops ANSI colour codes (worker logs a Ray client receives arrive coloured by the head)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(ANSI.sub("", text) if "\x1b[" in text else text)
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def console_for_pipes() -> None:
    """No colour codes where the output is not a terminal: Ray's worker-log prefixes, its log lines, its prints."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not stream.isatty() and not isinstance(stream, _Uncoloured):
            setattr(sys, name, _Uncoloured(stream))
    if sys.__stdout__.isatty() and sys.__stderr__.isatty():
        return
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    import ray  # noqa: F401  (sets up the "ray" logger and its handlers)

    for handler in logging.getLogger("ray").handlers:
        if not any(isinstance(f, _NoColour) for f in handler.filters):
            handler.addFilter(_NoColour())
