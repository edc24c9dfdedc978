"""A stage's resblocks' first convolutions, side by side as one launch.

Every resblock of a HiFi-GAN stage starts from the same rows: the stage input's leaky ReLU (FusedResBlock.stage_mean
makes it once). Where two blocks' first convs share a dilation and are same-padded, their weights [k_j, C, C] side by
side along the output channels, the narrower zero-padded (centred) to the wider's taps, are one conv [k, C, 2C]
whose tap loop reads those rows once for both. `lrelu_conv_halves` stores its output's two channel halves as two
compact tensors, one per block, which each block's next conv reads as its own rows. `pair` picks the two widest
kernels: at 64 channels all three side by side (N = 192 -> 256 per tile) doubled the products and lost.

Why: a fused conv's cost grows with its taps (each tap moves its rows through the SM's memory), not with its output
channels at these widths. H200, fp16, B=16 x 1,024 frames (benchmarks/first_convs.py, BENCHMARKS.md session 19), the
three first convs (k = 3, 7, 11) as three launches / k = 11 and 7 side by side plus k = 3: 16 channels 0.794 / 0.617
ms, 32 channels 0.826 / 0.649 ms, 64 channels 0.941 / 0.839 ms, with outputs identical to the separate launches'.
The shared output as one [B, 2C, T] tensor read as halves lost in the model (4,216.5x against 4,275.7x): each next
conv then read rows 2C wide for C channels, doubling its input traffic; hence the compact halves, which won: gsv_v4
fp16, issue 18's bench command, 4,035.7x against 3,977.6x without in one call (BENCHMARKS.md session 20).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from batchvoc.engines.fused_resblock import FusedResBlock, PackedConv, lrelu_conv_halves, tile_list, tiles
from batchvoc.engines.triton_runtime import pow2_between
from batchvoc.models.hifigan import LRELU_SLOPE


def side_by_side(weights: list[Tensor]) -> Tensor:
    """Same-padded convs' weights [k_j, C, O_j] (k_j odd) as one [max k_j, C, sum O_j], each centred in zero taps."""
    k_max = max(w.shape[0] for w in weights)
    padded = [F.pad(w, (0, 0, 0, 0, (k_max - w.shape[0]) // 2, (k_max - w.shape[0]) // 2)) for w in weights]
    return torch.cat(padded, dim=2).contiguous()


def pair(blocks: list[nn.Module]) -> tuple[int, int] | None:
    """Indices of the two blocks whose first convs run side by side: FusedResBlocks of ResBlock1 pairs, the two with
    the widest kernels, both first convs same-padded with one dilation, equal widths in and out; None where no two
    qualify."""
    if len(blocks) < 2 or not all(isinstance(b, FusedResBlock) and len(b.groups[0]) == 2 for b in blocks):
        return None
    firsts = [b.groups[0][0] for b in blocks]
    if any(c.samples for c in firsts):  # super-rows read compact rows; a half of the shared output is not
        return None
    widest = sorted(range(len(blocks)), key=lambda i: firsts[i].weight.shape[0])[-2:]
    a, b = (firsts[i] for i in widest)
    same = (
        a.dilation == b.dilation and a.weight.shape[1:] == b.weight.shape[1:] and a.weight.shape[1] == a.weight.shape[2]
    )
    padded = all(2 * c.padding == c.dilation * (c.weight.shape[0] - 1) for c in (a, b))
    return (widest[0], widest[1]) if same and padded else None


def pair_tile(channels: int, ksize: int) -> list[int]:
    """The shared conv's tile (benchmarks/first_convs.py on the H200): both halves' output channels in one tile, 256
    time steps at 16 channels, 128 above, the tap loop pipelined 3 deep, 4 warps."""
    config = tiles(channels, 2 * channels, ksize, activate_input=False)
    block_n = pow2_between(2 * channels, 16, 128)
    config.update(BLOCK_M=256 if channels <= 16 else 128, BLOCK_N=block_n, num_warps=4, STAGES=3)
    return tile_list(config)


class SharedFirstConvs(nn.Module):
    """Two blocks' first convs (`pair`'s, blocks `members` of their stage) as one conv of their weights side by side:
    activated x [B, C, T] (the stage input's leaky ReLU, zeroed) -> each member's first conv output, activated as
    FusedResBlock.run's inner convs hand it on ([B, C, T] channels-last, compact: one launch, `lrelu_conv_halves`)."""

    def __init__(self, blocks: list[nn.Module], members: tuple[int, int]):
        super().__init__()
        firsts: list[PackedConv] = [blocks[i].groups[0][0] for i in members]
        self.members = members
        self.channels = firsts[0].weight.shape[2]
        self.weight = nn.Parameter(side_by_side([c.weight.detach() for c in firsts]), requires_grad=False)
        self.bias = nn.Parameter(torch.cat([c.bias.detach() for c in firsts]), requires_grad=False)
        self.dilation = firsts[0].dilation
        self.padding = self.dilation * (self.weight.shape[0] - 1) // 2
        self.tile = pair_tile(self.channels, self.weight.shape[0])
        lrelu_conv_halves.define()

    def forward(self, activated: Tensor, valid: Tensor, rate: int) -> dict[int, Tensor]:
        halves = torch.ops.batchvoc.lrelu_conv_halves(activated, self.weight, self.bias, valid, rate, self.dilation,
                                                      self.padding, LRELU_SLOPE, activate_input=False,
                                                      activate_output=True, tile=self.tile)  # fmt: skip
        return dict(zip(self.members, halves, strict=True))


def share_first_convs(stages: list[list[nn.Module]]) -> None:
    """Give each stage whose blocks `pair` admits a SharedFirstConvs, held by its first block as `shared_first`
    (FusedResBlock.stage_mean runs it)."""
    for blocks in stages:
        members = pair(blocks)
        if members is not None:
            blocks[0].shared_first = SharedFirstConvs(blocks, members)
