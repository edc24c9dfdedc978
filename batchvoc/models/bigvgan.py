"""NVIDIA BigVGAN (v1 and v2) generator with exact window edges; GPT-SoVITS v3 uses bigvgan_v2_24khz_100band_256x.

Architecture and names follow NVIDIA/BigVGAN's bigvgan.py, so NVIDIA's bigvgan_generator.pt ({"generator": ...})
loads once weight norm is folded (checkpoint.py): conv_pre, ups.N.0 (a ModuleList per stage, as upstream),
resblocks.N.convs1.M / convs2.M (AMPBlock1) or convs.M (AMPBlock2), resblocks.N.activations.M.{act.alpha,
act.beta, upsample.filter, downsample.lowpass.filter}, activation_post.*, conv_post (bias per use_bias_at_final).

Convs are plain (no weight norm). Random init is PyTorch's default: upstream's init_weights runs after
weight_norm() and so never reaches the weights that forward uses; its random model is default-initialised too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from batchvoc.models.activations import make_activation
from batchvoc.models.antialias import Activation1d
from batchvoc.models.generator import GeneratorMixin, same_padding
from batchvoc.models.span import Span


def _conv_needs(conv: nn.Conv1d, lo: int, hi: int) -> tuple[int, int]:
    """Input samples that a stride-1 conv's outputs [lo, hi] read."""
    pad, dil, k = conv.padding[0], conv.dilation[0], conv.kernel_size[0]
    return lo - pad, hi - pad + dil * (k - 1)


def _conv_transpose_needs(conv: nn.ConvTranspose1d, lo: int, hi: int) -> tuple[int, int]:
    """Input samples that a transposed conv's outputs [lo, hi] read: output n = i * stride - pad + m, m in [0, k)."""
    pad, u, k = conv.padding[0], conv.stride[0], conv.kernel_size[0]
    return -(-(lo + pad - k + 1) // u), (hi + pad) // u


class AMPBlock1(nn.Module):
    """Per dilation d: x += conv(act(conv_d(act(x)))). x [B, C, T] -> [B, C, T]."""

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        dilation: Sequence[int] = (1, 3, 5),
        activation: str = "snakebeta",
        snake_logscale: bool = True,
    ):
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=same_padding(kernel_size, d))
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, dilation=1, padding=same_padding(kernel_size))
            for _ in dilation
        )
        self.num_layers = len(self.convs1) + len(self.convs2)
        self.activations = nn.ModuleList(
            Activation1d(make_activation(activation, channels, snake_logscale)) for _ in range(self.num_layers)
        )

    def forward(self, x: Tensor, span: Span, rate: int) -> Tensor:
        acts1, acts2 = self.activations[::2], self.activations[1::2]
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, acts1, acts2, strict=True):
            xt = c1(span.zero(a1(x, span, rate), rate))
            xt = c2(span.zero(a2(xt, span, rate), rate))
            x = xt + x
        return x

    def needs(self, lo: int, hi: int) -> tuple[int, int]:
        """Input samples that outputs [lo, hi] read (the residual path reads [lo, hi] itself)."""
        acts1, acts2 = self.activations[::2], self.activations[1::2]
        for c1, c2, a1, a2 in reversed(list(zip(self.convs1, self.convs2, acts1, acts2, strict=True))):
            a, b = a1.needs(*_conv_needs(c1, *a2.needs(*_conv_needs(c2, lo, hi))))
            lo, hi = min(a, lo), max(b, hi)
        return lo, hi


class AMPBlock2(nn.Module):
    """Per dilation d: x += conv_d(act(x)). x [B, C, T] -> [B, C, T]."""

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        dilation: Sequence[int] = (1, 3),
        activation: str = "snakebeta",
        snake_logscale: bool = True,
    ):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=same_padding(kernel_size, d))
            for d in list(dilation)[:2]  # upstream builds two convs from the first two dilations
        )
        self.num_layers = len(self.convs)
        self.activations = nn.ModuleList(
            Activation1d(make_activation(activation, channels, snake_logscale)) for _ in range(self.num_layers)
        )

    def forward(self, x: Tensor, span: Span, rate: int) -> Tensor:
        for c, a in zip(self.convs, self.activations, strict=True):
            x = c(span.zero(a(x, span, rate), rate)) + x
        return x

    def needs(self, lo: int, hi: int) -> tuple[int, int]:
        for c, a in reversed(list(zip(self.convs, self.activations, strict=True))):
            a_lo, a_hi = a.needs(*_conv_needs(c, lo, hi))
            lo, hi = min(a_lo, lo), max(a_hi, hi)
        return lo, hi


class BigVGAN(GeneratorMixin, nn.Module):
    """mel [B, n_mels, T] (natural-log mel) -> audio [B, 1, T * prod(upsample_rates)] in [-1, 1]."""

    def __init__(
        self,
        n_mels: int = 100,
        resblock: str = "1",
        upsample_rates: Sequence[int] = (4, 4, 2, 2, 2, 2),
        upsample_kernel_sizes: Sequence[int] = (8, 8, 4, 4, 4, 4),
        upsample_initial_channel: int = 1536,
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        activation: str = "snakebeta",
        snake_logscale: bool = True,
        use_tanh_at_final: bool = True,
        use_bias_at_final: bool = True,
    ):
        super().__init__()
        if str(resblock) not in ("1", "2"):
            raise ValueError(f"resblock must be '1' or '2', got {resblock!r}")
        if activation not in ("snake", "snakebeta"):
            raise ValueError(f"activation must be 'snake' or 'snakebeta', got {activation!r}")
        if upsample_initial_channel // 2 ** len(upsample_rates) < 1:
            least = 2 ** len(upsample_rates)
            raise ValueError(f"upsample_initial_channel must be >= {least} (2 ** len(upsample_rates)), "
                             f"not {upsample_initial_channel}")  # fmt: skip
        self.upsample_rates = [int(u) for u in upsample_rates]
        self.upsample_kernel_sizes = [int(k) for k in upsample_kernel_sizes]
        self.num_kernels = len(resblock_kernel_sizes)
        self.num_upsamples = len(self.upsample_rates)
        self.hop_length = math.prod(self.upsample_rates)
        self.use_tanh_at_final = bool(use_tanh_at_final)
        self.use_bias_at_final = bool(use_bias_at_final)

        self.conv_pre = nn.Conv1d(n_mels, upsample_initial_channel, 7, 1, padding=3)
        block = AMPBlock1 if str(resblock) == "1" else AMPBlock2
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (u, k) in enumerate(zip(self.upsample_rates, self.upsample_kernel_sizes, strict=True)):
            ch = upsample_initial_channel // 2 ** (i + 1)
            # one-element ModuleList per stage, as upstream: keys are ups.N.0.weight
            ch_in = upsample_initial_channel // 2**i  # upstream's; not ch * 2 when the halving is inexact
            self.ups.append(nn.ModuleList([nn.ConvTranspose1d(ch_in, ch, k, u, padding=(k - u) // 2)]))
            for rk, rd in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(block(ch, rk, rd, activation, snake_logscale))
        self.activation_post = Activation1d(make_activation(activation, ch, snake_logscale))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=self.use_bias_at_final)

    def forward(self, mel: Tensor, valid: Tensor | None = None) -> Tensor:
        """mel [B, n_mels, T] float; valid [B, 2] int64 real frames [start, end) or None -> audio [B, 1, T*hop].

        With valid=None this is upstream's forward, operation for operation.
        """
        span = Span(valid)
        x = self.conv_pre(span.zero(mel, 1))
        rate = 1
        for i in range(self.num_upsamples):
            for up in self.ups[i]:
                x = up(span.zero(x, rate))
            rate *= self.upsample_rates[i]
            blocks = self.stage_blocks(i)
            xs = blocks[0](x, span, rate)
            if xs.dtype in (torch.float16, torch.bfloat16):  # the blocks' sum can pass fp16's range; their mean not
                xs = xs.float()
            for b in blocks[1:]:
                xs = xs + b(x, span, rate)
            x = (xs / self.num_kernels).to(x.dtype)
        x = self.activation_post(x, span, rate)
        x = self.conv_post(span.zero(x, rate))
        if self.use_tanh_at_final:
            return torch.tanh(x)
        return torch.clamp(x, min=-1.0, max=1.0)

    def frame_reach(self) -> tuple[int, int]:
        """(before, after): mel frames that output frame 0 depends on, on each side, from the layer geometry.

        Walks the sample interval of output frame 0, [0, hop - 1], back through every layer (conv_post, the final
        anti-aliased activation, each stage's AMP blocks and transposed conv, conv_pre), each mapping the output
        samples it must produce to the input samples it reads, anti-alias filters at the 2x rate included.
        """
        lo, hi = _conv_needs(self.conv_post, 0, self.hop_length - 1)
        lo, hi = self.activation_post.needs(lo, hi)
        for i in reversed(range(self.num_upsamples)):
            blocks = self.stage_blocks(i)
            spans = [b.needs(lo, hi) for b in blocks]
            lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
            for up in reversed(self.ups[i]):
                lo, hi = _conv_transpose_needs(up, lo, hi)
        lo, hi = _conv_needs(self.conv_pre, lo, hi)
        return -lo, hi  # output frame 0 spans input frame 0


Generator = BigVGAN


def build(hparams: dict[str, Any]) -> BigVGAN:
    """Family-table entry: hparams (a preset's, or a config.json's through checkpoint_config.READERS) ->
    random-init BigVGAN."""
    return BigVGAN.from_hparams(**hparams)
