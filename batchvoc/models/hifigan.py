"""HiFi-GAN generator (jik876/hifi-gan V1/V2/V3; GPT-SoVITS v4's 48 kHz vocoder) with exact window edges.

Module and parameter names follow upstream (conv_pre, ups.N, resblocks.N.convs1.M / convs2.M or convs.M,
conv_post), so upstream state dicts load unchanged once weight norm is folded (see checkpoint.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from batchvoc.models.generator import GeneratorMixin, same_padding
from batchvoc.models.span import Span

LRELU_SLOPE = 0.1  # upstream's slope everywhere except before conv_post
POST_SLOPE = 0.01  # before conv_post upstream calls F.leaky_relu with its default slope


class ResBlock1(nn.Module):
    """Three (dilated conv, conv) pairs with residuals: x [B, C, T] -> [B, C, T]."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.channels, self.kernel_size = channels, kernel_size
        self.dilations = list(dilations)
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, padding=same_padding(kernel_size, d), dilation=d)
            for d in self.dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, padding=same_padding(kernel_size)) for _ in self.dilations
        )

    def reach(self) -> int:
        """Samples of context this block reads on each side."""
        return sum(same_padding(self.kernel_size, d) + same_padding(self.kernel_size) for d in self.dilations)

    def forward(self, x: Tensor, span: Span, rate: int) -> Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = c1(span.zero(F.leaky_relu(x, LRELU_SLOPE), rate))
            xt = c2(span.zero(F.leaky_relu(xt, LRELU_SLOPE), rate))
            x = xt + x
        return x


class ResBlock2(nn.Module):
    """Two dilated convs with residuals: x [B, C, T] -> [B, C, T]."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.channels, self.kernel_size = channels, kernel_size
        self.dilations = list(dilations)[:2]
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, padding=same_padding(kernel_size, d), dilation=d)
            for d in self.dilations
        )

    def reach(self) -> int:
        """Samples of context this block reads on each side."""
        return sum(same_padding(self.kernel_size, d) for d in self.dilations)

    def forward(self, x: Tensor, span: Span, rate: int) -> Tensor:
        for c in self.convs:
            x = c(span.zero(F.leaky_relu(x, LRELU_SLOPE), rate)) + x
        return x


def residual_groups(block: nn.Module) -> list[list[nn.Module]]:
    """A ResBlock1's or ResBlock2's convs as its residual adds take them, in order: each group g makes
    x = g[-1](act(... g[0](act(x)))) + x ((c1, c2) pairs, or single convs). Raises ValueError for another module."""
    if isinstance(block, ResBlock1):
        return [[c1, c2] for c1, c2 in zip(block.convs1, block.convs2, strict=True)]
    if isinstance(block, ResBlock2):
        return [[c] for c in block.convs]
    raise ValueError(f"needs a ResBlock1 or ResBlock2, got {type(block).__name__}")


def stage_mean(blocks: Sequence[nn.Module], x: Tensor, span: Span, rate: int, out_slope: float | None = None) -> Tensor:
    """The mean of one stage's resblocks on their common input x [B, C, T] -> [B, C, T], or with out_slope its leaky
    ReLU at that slope, zeroed outside the utterances (what the generator hands the next layer). Blocks all of one
    class with its own `stage_mean` (the engines' FusedResBlock: x's leaky ReLU made once for all of them, the mean
    and its activation made by the last block's last conv) compute it that way."""
    own = _own_stage_mean(blocks)
    if own is not None:
        return own(blocks, x, span, rate, out_slope=out_slope)
    xs = blocks[0](x, span, rate)
    for b in blocks[1:]:
        xs = xs + b(x, span, rate)
    xs = xs / len(blocks)
    return xs if out_slope is None else span.zero(F.leaky_relu(xs, out_slope), rate)


def _own_stage_mean(blocks: Sequence[nn.Module]):
    """The blocks' class's own `stage_mean` where they are all of one class that has one, else None."""
    kind = type(blocks[0])
    return getattr(kind, "stage_mean", None) if all(type(b) is kind for b in blocks) else None


def upsampled_stage(
    up: nn.Module, blocks: Sequence[nn.Module], x: Tensor, span: Span, rate: int, factor: int, out_slope: float
) -> Tensor:
    """One stage on x [B, C, T] (activated and zeroed by the caller, `rate` samples per frame): the upsampler (by
    `factor`), then `stage_mean` at rate * factor, leaky ReLU'd at out_slope and zeroed for the next layer. An
    upsampler with a `stage_input` (the engines' FusedUpsample) and blocks with their own `stage_mean` (FusedResBlock)
    make the stage's input's leaky ReLU, zeroed, in the upsampler's launch: the blocks then read their input only
    through it."""
    stage_input, own = getattr(up, "stage_input", None), _own_stage_mean(blocks)
    if stage_input is None or own is None:
        return stage_mean(blocks, up(x), span, rate * factor, out_slope)
    return own(blocks, None, span, rate * factor, activated=stage_input(x, span, rate), out_slope=out_slope)


class HiFiGAN(GeneratorMixin, nn.Module):
    """mel [B, n_mels, T] -> audio [B, 1, T * prod(upsample_rates)] in [-1, 1]. Weight norm never kept."""

    def __init__(
        self,
        n_mels: int = 80,
        resblock: str = "1",
        upsample_rates: Sequence[int] = (8, 8, 2, 2),
        upsample_kernel_sizes: Sequence[int] = (16, 16, 4, 4),
        upsample_initial_channel: int = 512,
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        conv_post_bias: bool = True,
    ):
        super().__init__()
        if resblock not in ("1", "2"):
            raise ValueError(f"resblock must be '1' or '2', got {resblock!r}")
        self.upsample_rates = [int(u) for u in upsample_rates]
        self.upsample_kernel_sizes = [int(k) for k in upsample_kernel_sizes]
        self.num_kernels = len(resblock_kernel_sizes)
        self.hop_length = math.prod(self.upsample_rates)
        self.conv_pre = nn.Conv1d(n_mels, upsample_initial_channel, 7, 1, padding=3)
        block = ResBlock1 if resblock == "1" else ResBlock2
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for i, (u, k) in enumerate(zip(self.upsample_rates, self.upsample_kernel_sizes, strict=True)):
            ch = upsample_initial_channel // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(ch * 2, ch, k, u, padding=(k - u) // 2))
            for rk, rd in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(block(ch, rk, rd))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=conv_post_bias)
        self._init_like_upstream()

    def _init_like_upstream(self) -> None:
        # upstream's init_weights: N(0, 0.01) for the transposed convs and the resblocks' convs; none on the meta
        # device (an actor's skeleton, weights copied in after): normal_ there imports torch._dynamo (seconds)
        for m in [*self.ups, *self.resblocks.modules()]:
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)) and not m.weight.is_meta:
                nn.init.normal_(m.weight, 0.0, 0.01)

    def forward(self, mel: Tensor, valid: Tensor | None = None) -> Tensor:
        """mel [B, n_mels, T] float; valid [B, 2] int64 real frames [start, end) or None -> audio [B, 1, T*hop]."""
        span = Span(valid)
        x = span.zero(F.leaky_relu(self.conv_pre(span.zero(mel, 1)), LRELU_SLOPE), 1)
        rate = 1
        for i, (up, u) in enumerate(zip(self.ups, self.upsample_rates, strict=True)):
            # each stage hands on its output activated: at LRELU_SLOPE for the next upsampler, at F.leaky_relu's
            # default slope (0.01) for conv_post, as upstream
            slope = LRELU_SLOPE if i + 1 < len(self.ups) else POST_SLOPE
            x = upsampled_stage(up, self.stage_blocks(i), x, span, rate, u, slope)
            rate *= u
        return torch.tanh(self.conv_post(x))

    def frame_reach(self) -> tuple[int, int]:
        """(before, after): input frames one output frame depends on, on each side, from the layer geometry.

        Walks the sample interval of output frame 0 back through every layer: same-padded convs widen it by
        their padding, a transposed conv (k, u, p) maps output n to inputs j with n + p - k + 1 <= j*u <= n + p.
        """
        lo, hi = 0, self.hop_length - 1
        lo, hi = lo - 3, hi + 3  # conv_post
        for i in reversed(range(len(self.ups))):
            r = max(b.reach() for b in self.stage_blocks(i))
            lo, hi = lo - r, hi + r
            u, k = self.upsample_rates[i], self.upsample_kernel_sizes[i]
            p = (k - u) // 2
            lo, hi = -((-(lo + p - k + 1)) // u), (hi + p) // u
        return 3 - lo, hi + 3  # conv_pre; output frame 0 spans input frame 0


Generator = HiFiGAN


def build(hparams: dict[str, Any]) -> HiFiGAN:
    """Family-table entry: hparams (a preset's, possibly merged with a config.json's) -> random-init HiFiGAN."""
    return HiFiGAN.from_hparams(**hparams)
