"""HiFi-GAN's wide resblocks (those left to cuDNN's convolutions) handing on activated rows only (opt-in: the engine
option resblocks="fused_wide"; gsv_v4 fp16 on an H200 ran 3.8% slower with it, 4,149x against 4,311x: BENCHMARKS.md,
session 25, whose profile of why is still to make).

Under Inductor a stock ResBlock1 group, x + c2(lrelu(c1(lrelu(x)))), stores only lrelu of its sum (cuDNN needs the
next conv's input stored), and each later residual add makes the sum again from every earlier conv output and x:
a block's third group reads four tensors for its residual. A WideResBlock's groups read one, the stored activated
sum inverted (fused_resblock's `inverse_leaky_relu`: a / slope where negative, exact but for the rounding of the
stored rows), which Inductor fuses into the kernel after each conv: on a CPU a stage of three blocks reads 37
tensors where the stock blocks read 49, and stores 17 where they store 19 (tests/engines/test_wide_resblock.py);
gsv_v4's 128- and 256-channel stages move [16, C, T] fp16 tensors of 252 and 84 MB. The convolutions stay the
block's own modules, so the layout rewrite (engines/layout.channels_last_2d) makes them channels-last, folded where
dilated, as elsewhere.

The same function as the reference block inside each utterance (zero outside it, as FusedResBlock's): every conv
reads rows that the reference's Span.zero zeroed too, and only the gaps of the output differ.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from batchvoc.engines.fused_resblock import inverse_leaky_relu
from batchvoc.models.hifigan import LRELU_SLOPE, ResBlock1, ResBlock2, residual_groups
from batchvoc.models.span import Span


class WideResBlock(nn.Module):
    """A ResBlock1 / ResBlock2 whose groups hand on their output's leaky ReLU only (module doc); same interface, its
    convs the block's own modules. Raises ValueError for another module."""

    def __init__(self, block: ResBlock1 | ResBlock2):
        super().__init__()
        self.groups = nn.ModuleList(nn.ModuleList(group) for group in residual_groups(block))
        self._reach = block.reach()
        self.channels, self.kernel_size = block.channels, block.kernel_size

    def reach(self) -> int:
        return self._reach

    def forward(self, x: Tensor, span: Span, rate: int) -> Tensor:
        return self.run(x, _activated(x, span, rate), span, rate)

    @staticmethod
    def stage_mean(blocks: nn.ModuleList, x: Tensor | None, span: Span, rate: int, activated: Tensor | None = None,
                   out_slope: float | None = None) -> Tensor:  # fmt: skip
        """The mean of a stage's WideResBlocks on x [B, C, T] (hifigan.stage_mean), or with out_slope the mean's leaky
        ReLU at that slope, zeroed outside the utterances: x's leaky ReLU made once for all blocks (or given as
        `activated` by the stage's upsampler, x then None), each block's first residual read from it inverted."""
        activated = _activated(x, span, rate) if activated is None else activated
        total = blocks[0].run(None, activated, span, rate)
        for block in blocks[1:]:
            total = total + block.run(None, activated, span, rate)
        total = total / len(blocks)
        return total if out_slope is None else span.zero(F.leaky_relu(total, out_slope), rate)

    def run(self, x: Tensor | None, activated: Tensor, span: Span, rate: int) -> Tensor:
        """The block's output on x [B, C, T], zeroed outside the utterances, x given as `activated`, its leaky ReLU
        zeroed there too (x itself may be None: the first residual is then read from `activated`, inverted)."""
        res, res_activated = (activated, True) if x is None else (x, False)
        h = activated
        for j, group in enumerate(self.groups):
            for i, conv in enumerate(group):
                y = conv(h)
                if i < len(group) - 1:
                    h = _activated(y, span, rate)
                    continue
                y = y + (inverse_leaky_relu(res, LRELU_SLOPE) if res_activated else res)
                if j == len(self.groups) - 1:
                    return span.zero(y, rate)
                h = res = _activated(y, span, rate)
                res_activated = True
        raise ValueError("WideResBlock has no groups")


def _activated(x: Tensor, span: Span, rate: int) -> Tensor:
    """x's leaky ReLU zeroed outside the utterances: what the reference block hands each conv."""
    return span.zero(F.leaky_relu(x, LRELU_SLOPE), rate)
