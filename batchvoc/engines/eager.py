"""Eager PyTorch: the reference engine, and the CPU default.

The model is copied and cast to the precision (fp32 | bf16 | fp16; fp16 on CPU runs in fp32, see base.py) and
called as is, for any shape.
"""

from __future__ import annotations

import torch
from torch import nn

from batchvoc.engines.base import Engine, cast_model, resolve_precision
from batchvoc.models.presets import Preset


def build(model: nn.Module, preset: Preset, precision: str, device, shapes=None, cache_dir=None, **options) -> Engine:
    """An eager Engine of `model` (copied) in `precision` on `device`; shapes and cache_dir are not used."""
    if options:
        raise TypeError(f"eager engine takes no options, got {sorted(options)}")
    precision, dtype = resolve_precision(precision, device)
    net = cast_model(model, dtype, torch.device(device))

    def run(mel, valid):
        return net(mel, valid)

    return Engine(run, backend="eager", precision=precision, device=device, hop=preset.hop_length)
