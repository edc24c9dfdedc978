"""A HiFi-GAN upsampler (nn.ConvTranspose1d, stride s) as one same-padded `lrelu_conv` launch of s phases.

With output sample o = q s + r' (0 <= r' < s), the transposed conv's y[o] = b + sum_kk W[:, :, kk]^T x[i] sums over
the kk where i = (o + p - kk) / s is whole: phase r' of row q reads x[q + delta], delta = (r' + p - kk) / s. Over
all phases that is one stride-1 conv of x with K' = 2 P + 1 taps (P the largest |delta|) whose s O output channels
(index r' O + c, zero weights where a phase has no such tap) are the phases. Our kernel writes it as channels-last
rows [B][T][s][O], which is y's own memory [B][T s][O]: y is a view of it, with no interleaving pass and no slice
(`k - 2 p == s`: y has T s samples; every HiFi-GAN and BigVGAN upsampler, p = (k - s) / 2). The polyphase
decomposition of an interpolator (Vaidyanathan, Multirate Systems and Filter Banks, ch. 4); its K' / M taps of FLOPs
over upsample_phases.PolyphaseConvTranspose1d's M = k / s are nothing to a narrow layer, which memory bounds.

Why: at gsv_v4's narrow upsamplers cuDNN's convolutions (upsample_phases.PolyphaseConvTranspose1d) run far off
memory's pace (~0.12 ms to read x and write y). B=16 rows of 1,024 frames, fp16, H200 (benchmarks/upsamplers.py,
BENCHMARKS.md session 18), cuDNN's transposed conv / cuDNN's polyphase conv / this: 128 -> 64 channels 0.542 / 0.481
/ 0.385 ms, 64 -> 32 0.586 / 0.480 / 0.186 ms, 32 -> 16 0.813 / 0.499 / 0.167 ms, closer to fp32 too (1.3-1.4e-3 max
abs against 2.2-2.3e-3).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from batchvoc.engines.fused_resblock import lrelu_conv
from batchvoc.engines.triton_runtime import channels_last_rows
from batchvoc.engines.upsample_phases import in_phases
from batchvoc.models.hifigan import LRELU_SLOPE
from batchvoc.models.span import Span

# Upsamplers of at most this many channels in and phases out are fused, however wide the fused resblocks (H200,
# gsv_v4 fp16, benchmarks/upsamplers.py: 128 -> 64 0.385 ms against cuDNN's 0.481 ms, BENCHMARKS.md session 18)
MAX_CHANNELS = 128


def computes(conv: nn.Module) -> bool:
    """Whether FusedUpsample computes conv: an nn.ConvTranspose1d the polyphase form takes (upsample_phases.in_phases)
    whose y is T s samples long (k - 2p = s, no output_padding)."""
    if type(conv) is not nn.ConvTranspose1d or not in_phases(conv):
        return False
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    return conv.output_padding[0] == 0 and k - 2 * p == s


def fits(conv: nn.Module, max_channels: int) -> bool:
    """Whether the engine fuses upsampler conv: FusedUpsample `computes` it, with at most max_channels in and out
    over its phases."""
    return computes(conv) and max(conv.in_channels, conv.out_channels * conv.stride[0]) <= max_channels


def phase_taps(weight: Tensor, stride: int, padding: int) -> Tensor:
    """ConvTranspose1d weight W [C, O, k] -> the same-padded phase conv's weight V [K', C, s O] (the kernel's GEMM
    order): V[delta + P, ci, r' O + c] = W[ci, c, kk] for every kk and phase r' with r' + p - kk = delta s."""
    channels, out, k = weight.shape
    taps = {}  # (delta, r') -> kk
    for r in range(stride):
        for kk in range(k):
            delta, rest = divmod(r + padding - kk, stride)
            if rest == 0:
                taps[delta, r] = kk
    reach = max(abs(delta) for delta, _ in taps)
    v = weight.new_zeros(2 * reach + 1, channels, stride, out)
    for (delta, r), kk in taps.items():
        v[delta + reach, :, r] = weight[:, :, kk]
    return v.reshape(2 * reach + 1, channels, stride * out)


class FusedUpsample(nn.Module):
    """An nn.ConvTranspose1d that `fits` as one `lrelu_conv` of its phases (module doc): x [B, C, T] -> y [B, O, T s]
    with channels-last strides (a view of the kernel's [B, s O, T] rows). No activation, no span zeroing: the
    generator hands it x activated and zeroed, as it hands the transposed conv. Raises ValueError for a conv that
    does not fit (any size)."""

    def __init__(self, conv: nn.ConvTranspose1d):
        super().__init__()
        if not computes(conv):
            raise ValueError("FusedUpsample needs a ConvTranspose1d of one group, dilation 1, k - 2p = stride")
        self.stride, self.out_channels = conv.stride[0], conv.out_channels
        weight = phase_taps(conv.weight.detach(), self.stride, conv.padding[0])
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.padding = (weight.shape[0] - 1) // 2
        bias = conv.bias.detach() if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
        self.bias = nn.Parameter(bias.repeat(self.stride), requires_grad=False)  # index r' O + c
        self.channels_last = False  # engines/layout.channels_last_2d sets it: x then comes as channels-last rows
        lrelu_conv.define()

    def forward(self, x: Tensor) -> Tensor:
        x = channels_last_rows(x) if self.channels_last else x
        none = x.new_empty((0,), dtype=torch.int64)  # no span: the kernel zeroes nothing
        phases = torch.ops.batchvoc.lrelu_conv(x, self.weight, self.bias, None, none, 1, 1, self.padding, 0.0,
                                               activate_input=False, activate_output=False, tile=[])  # fmt: skip
        return self._samples(phases)

    def stage_input(self, x: Tensor, span: Span, rate: int) -> Tensor:
        """leaky_relu(y) for x [B, C, T] at `rate` samples per frame, y [B, O, T s] this upsampler's output, zeroed
        outside the utterances, from one launch: what a fused stage reads its input through (the blocks' first convs
        take it as it is, their residuals invert it: FusedResBlock.run), so y itself is never stored (H200, gsv_v4:
        Inductor's kernel making y and its activation took 0.18-0.21 ms per stage, ~0.45 ms where our kernels are
        traced). A phase row q holds output samples q s .. q s + s - 1, all in x's frame q // rate: zeroing rows by
        x's frames is zeroing y's samples by theirs."""
        x = channels_last_rows(x) if self.channels_last else x
        valid = span.per_frame(x.shape[-1] // rate, x.device)
        activated = torch.ops.batchvoc.lrelu_conv(x, self.weight, self.bias, None, valid, rate, 1, self.padding,
                                                  LRELU_SLOPE, activate_input=False, activate_output=True,
                                                  tile=[])  # fmt: skip
        return self._samples(activated)

    def _samples(self, phases: Tensor) -> Tensor:
        """The kernel's phases [B, s O, T] (channels-last rows) as the upsampled signal [B, O, T s]: a view."""
        rows, _, length = phases.shape
        return phases.transpose(1, 2).reshape(rows, length * self.stride, self.out_channels).transpose(1, 2)
