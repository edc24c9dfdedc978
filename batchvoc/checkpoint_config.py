"""A checkpoint folder's config.json -> a model family's hyper-parameters, without torch.

The model loader (models.load_vocoder) and the job's quick checks (runner/checks.py, which must not import torch:
batchvoc.models does) read a folder's config.json through these functions and the one READERS mapping, so the
hyper-parameters the checks expect are the ones the loader builds from, by construction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchvoc.errors import ConfigError

KEY = "model.checkpoint"

# the architecture keys of a jik876-style config.json, which BigVGAN's config.json extends
CONFIG_KEYS = (
    "resblock",
    "upsample_rates",
    "upsample_kernel_sizes",
    "upsample_initial_channel",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
)
_BIGVGAN_REQUIRED = (*CONFIG_KEYS, "activation", "num_mels")


def hifigan_hparams(config: dict[str, Any]) -> dict[str, Any]:
    """jik876-style config.json -> HiFiGAN hparams (only the keys the config holds)."""
    out = {k: config[k] for k in CONFIG_KEYS if k in config}
    if "num_mels" in config:
        out["n_mels"] = config["num_mels"]
    return out


def bigvgan_hparams(config: dict[str, Any]) -> dict[str, Any]:
    """NVIDIA's config.json -> BigVGAN hparams. Training keys are ignored; absent flags take upstream's defaults
    (use_tanh_at_final / use_bias_at_final True, snake_logscale True), so v1 configs read right too."""
    missing = [k for k in _BIGVGAN_REQUIRED if k not in config]
    if missing:
        raise ConfigError(KEY, f"BigVGAN config.json lacks {', '.join(missing)}")
    return dict(
        n_mels=int(config["num_mels"]),
        resblock=str(config["resblock"]),
        upsample_rates=[int(u) for u in config["upsample_rates"]],
        upsample_kernel_sizes=[int(k) for k in config["upsample_kernel_sizes"]],
        upsample_initial_channel=int(config["upsample_initial_channel"]),
        resblock_kernel_sizes=[int(k) for k in config["resblock_kernel_sizes"]],
        resblock_dilation_sizes=[[int(d) for d in ds] for ds in config["resblock_dilation_sizes"]],
        activation=str(config["activation"]),
        snake_logscale=bool(config.get("snake_logscale", True)),
        use_tanh_at_final=bool(config.get("use_tanh_at_final", True)),
        use_bias_at_final=bool(config.get("use_bias_at_final", True)),
    )


# preset.family -> its config.json reader; the one mapping the loader (models._folder_hparams) and the checks use
READERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "hifigan": hifigan_hparams,
    "bigvgan": bigvgan_hparams,
}


def folder_hparams(
    hparams: dict[str, Any], reader: Callable[[dict[str, Any]], dict[str, Any]] | None, folder: Path
) -> dict[str, Any]:
    """`hparams` (a preset's) with, over them, what `reader` (a family's, from READERS) takes from
    `folder`'s config.json where it holds one. ConfigError on model.checkpoint for a config.json that cannot be
    read or is no JSON object, and as `reader` raises it."""
    out = dict(hparams)
    config_path = folder / "config.json"
    if reader is not None and config_path.is_file():
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(KEY, f"cannot read {str(config_path)!r}: {exc}") from exc
        if not isinstance(config, dict):
            raise ConfigError(KEY, f"cannot read {str(config_path)!r}: it holds a JSON {type(config).__name__}, "
                              "not an object of hyper-parameters")  # fmt: skip
        out.update(reader(config))
    return out
