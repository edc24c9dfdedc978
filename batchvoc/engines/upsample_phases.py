"""A transposed convolution (an upsampler) as the forward convolution of its phases, for the engines' copy of a model
on a GPU (engines/layout.channels_last_2d puts it in place of every nn.ConvTranspose1d of groups 1 and dilation 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def rows_2d(x: Tensor) -> Tensor:
    """x [B, C, T] as [B, C, 1, T] with channels-last strides (memory [B, T, C]), what a (1, k) channels-last conv
    reads: a view where x has channels-last rows, else a copy. The view is made with as_strided, not unsqueeze: a
    compiler must then lay out x's producer as eager mode does. With unsqueeze, Inductor stored an activation feeding
    cuDNN twice, as [B, C, T] (never read) and channels-last for the conv: 21 such stores in a small HiFi-GAN's
    compiled forward on a CPU, none with this view (tests/engines/test_layout.py), as layout.phase_view found for
    the folded convs (BENCHMARKS.md, session 17)."""
    if x.stride(1) != 1:
        return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    rows, channels, length = x.shape
    sb, _, st = x.stride()
    return x.as_strided((rows, channels, 1, length), (sb, 1, length * st, st))  # x's storage offset


class PolyphaseConvTranspose1d(nn.Module):
    """An nn.ConvTranspose1d (groups 1, dilation 1) computed as s phases of one forward conv: [B, C, T] ->
    [B, O, L_out] (channels-last strides, a view with a storage offset), L_out = (T - 1) s - 2p + k + output_padding.

    With o + p = q s + r (0 <= r < s) and W [C, O, k] zero-padded along k to M s taps (M = ceil(k / s)),
    y[q s + r - p] = b + sum_{m < M} W[:, :, m s + r]^T x[q - m]: a causal M-tap conv of x whose s O output
    channels are the s phases of y. Run as a channels-last Conv2d (a (1, M) kernel, padding M - 1 each side) on x
    [B, C, 1, T], it writes Z [B, s O, 1, Q] (Q = T + M - 1) as memory [B][Q][s][O] = [B][Q s][O]: the phases
    interleave for free, and y is the view Z[b, c, p : p + L_out] of that memory, p O elements into each row (16-byte
    aligned for the fused kernels' block copies where O is a multiple of 8 in fp16 or bf16). Where L_out + p passes Q s
    (only with output_padding > p), x gets zero frames on the right first. The polyphase decomposition of an
    interpolator (Vaidyanathan, Multirate Systems and Filter Banks, ch. 4); M s / k times the transposed conv's FLOPs,
    the same for the shipped presets' upsamplers (gsv_v4, HiFi-GAN, BigVGAN: k a multiple of s).

    Why: cuDNN runs channels-last transposed convs (ConvTranspose1dAs2d) as "dgrad" kernels, far below the tensor
    cores' rate; a forward conv gets its fast kernels. gsv_v4's five upsamplers, B=16 rows of 1,024 frames, fp16,
    H200: 2.958 -> 2.265 ms (512 -> 256 channels 0.431 -> 0.253 ms), the engine 4,129x -> 4,173x real time;
    BigVGAN v2 24k's six: 3.741 -> 3.254 ms (benchmarks/upsamplers.py, BENCHMARKS.md session 18)."""

    def __init__(self, conv: nn.ConvTranspose1d):
        super().__init__()
        if not in_phases(conv):
            raise ValueError("PolyphaseConvTranspose1d supports zero padding, groups 1 and dilation 1 only")
        self.kernel_size, self.stride = conv.kernel_size[0], conv.stride[0]
        self.padding, self.output_padding = conv.padding[0], conv.output_padding[0]
        self.taps = -(-self.kernel_size // self.stride)  # M
        weight = phase_weight(conv.weight.detach(), self.stride)
        self.weight = nn.Parameter(weight.contiguous(memory_format=torch.channels_last), requires_grad=False)
        bias = None if conv.bias is None else conv.bias.detach().repeat(self.stride)  # index r O + c
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    def out_length(self, length: int) -> int:
        return (length - 1) * self.stride - 2 * self.padding + self.kernel_size + self.output_padding

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, T] -> y [B, O, L_out], memory [B, T', O] (T' >= L_out + p; class doc)."""
        length = x.shape[2]
        s, p, out = self.stride, self.padding, self.out_length(length)
        x = rows_2d(x)  # [B, C, 1, T], rows [B, T, C]
        extra = max(0, -(-(out + p) // s) - (length + self.taps - 1))  # zero frames for output_padding > p
        if extra:
            x = F.pad(x, (0, extra))
        z = F.conv2d(x, self.weight, self.bias, 1, (0, self.taps - 1))  # [B, s O, 1, Q]
        # narrow, not z[..., p:]: indexing takes a device guard, which a CPU-only torch lacks for fake CUDA tensors
        return interleave_phases(z, s).narrow(2, p, out)


def in_phases(conv: nn.ConvTranspose1d) -> bool:
    """Whether PolyphaseConvTranspose1d computes conv: zero padding, one group, dilation 1."""
    return conv.padding_mode == "zeros" and conv.groups == 1 and conv.dilation[0] == 1


def phase_weight(weight: Tensor, stride: int) -> Tensor:
    """A ConvTranspose1d weight W [C, O, k] as the forward Conv2d weight V [s O, C, 1, M] of its phases
    (PolyphaseConvTranspose1d): V[r O + c, ci, 0, j] = W[ci, c, (M - 1 - j) s + r], W zero-padded to M s taps."""
    channels, out, k = weight.shape
    taps = -(-k // stride)
    padded = F.pad(weight, (0, taps * stride - k)).reshape(channels, out, taps, stride)  # [C, O, m, r]
    return padded.flip(2).permute(3, 1, 0, 2).reshape(stride * out, channels, 1, taps)


def interleave_phases(z: Tensor, stride: int) -> Tensor:
    """z [B, s O, 1, Q] (channel r O + c: phase r of output channel c) -> [B, O, Q s], sample q s + r = z[:, r O + c,
    0, q]. A view where z is channels-last (memory [B][Q][s][O] is [B][Q s][O]); a copy otherwise."""
    rows, channels, _, length = z.shape
    rows_last = z.permute(0, 2, 3, 1).reshape(rows, length * stride, channels // stride)  # [B, Q s, O]
    return rows_last.transpose(1, 2)
