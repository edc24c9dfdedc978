"""Eager PyTorch: the reference engine, and the CPU default.

The model is copied and cast to the precision (fp32 | bf16 | fp16; fp16 on CPU runs in fp32, see base.py) and
called as is, for any shape. Options layout="channels_last_2d" / antialias="fused" / resblocks="fused"
(engines/layout.py) run the engine's copy with the rewrites the inductor engine uses on a GPU (for benchmarks and
checks); by default eager is the unmodified reference.
"""

from __future__ import annotations

from torch import nn

from batchvoc.engines import layout as _layout
from batchvoc.engines.base import Engine, build_target, laid_out
from batchvoc.models.presets import Preset


def build(
    model: nn.Module,
    preset: Preset,
    precision: str,
    device,
    shapes=None,
    cache_dir=None,
    **rewrites: str,
) -> Engine:
    """An eager Engine of `model` (copied) in `precision` on `device`; shapes and cache_dir are not used.

    rewrites: layout=, antialias=, resblocks= (engines/layout.py); by default none."""
    target = build_target("eager", preset.hop_length, precision, device, static=False)
    net, chosen = laid_out(model, target, **rewrites)

    def run(mel, valid):
        return net(mel, valid)

    details = "" if chosen.none else _layout.describe(chosen, model)
    return target.engine(run, details)
