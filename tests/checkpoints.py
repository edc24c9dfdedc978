"""Checkpoints in upstream formats, made from our own models by torch's own weight-norm code."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch


def weight_norm_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as upstream saves it during training: every conv as weight_g / weight_v."""
    wn = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated; upstream still uses it
        for m in wn.modules():
            if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                torch.nn.utils.weight_norm(m)
    return wn.state_dict()


def write_nvidia_folder(model: torch.nn.Module, config: dict, folder: Path) -> Path:
    """folder/config.json + folder/bigvgan_generator.pt ({"generator": weight-norm state}), as NVIDIA publishes."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"generator": weight_norm_state(model)}, folder / "bigvgan_generator.pt")
    (folder / "config.json").write_text(json.dumps(config))
    return folder
