"""BigVGAN's anti-aliased activation: upsample 2x with a Kaiser-windowed sinc, activate, low-pass and decimate.

Semantics follow NVIDIA/BigVGAN's alias_free_activation/torch (itself after junjun3518/alias-free-torch and
julius' low-pass design). Module and buffer names are upstream's: `Activation1d.act`, `.upsample.filter`,
`.downsample.lowpass.filter`; both filters are persistent buffers, so they are in upstream's state dicts.

Both resampling filters pad with *replicate*; inside a window, `Span.edge` re-creates that padding at the
utterance's edges (at the input rate before upsampling, at the upsampled rate before the low-pass).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from batchvoc.models.span import Span

_NO_SPAN = Span(None)


def kaiser_beta(attenuation_db: float) -> float:
    """Kaiser's empirical window shape for a stop-band attenuation A (dB)."""
    if attenuation_db > 50.0:
        return 0.1102 * (attenuation_db - 8.7)
    if attenuation_db >= 21.0:
        return 0.5842 * (attenuation_db - 21) ** 0.4 + 0.07886 * (attenuation_db - 21.0)
    return 0.0


def kaiser_sinc_filter1d(cutoff: float, half_width: float, kernel_size: int) -> Tensor:
    """Low-pass FIR [1, 1, kernel_size]: sinc at `cutoff` (cycles/sample) under a Kaiser window, summing to 1.

    The window's attenuation comes from the transition band 4*half_width and the half length, as in julius; an
    even kernel is centred between two taps (time = -K/2 + 0.5 ... K/2 - 0.5), an odd one on its middle tap.
    """
    even = kernel_size % 2 == 0
    half_size = kernel_size // 2
    attenuation = 2.285 * (half_size - 1) * math.pi * (4 * half_width) + 7.95
    window = torch.kaiser_window(kernel_size, beta=kaiser_beta(attenuation), periodic=False)
    if even:
        time = torch.arange(-half_size, half_size) + 0.5
    else:
        time = torch.arange(kernel_size) - half_size
    if cutoff == 0:
        taps = torch.zeros_like(time, dtype=torch.float32)
    else:
        taps = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
        taps /= taps.sum()  # unit DC gain: no leakage of a constant input
    return taps.view(1, 1, kernel_size)


class LowPassFilter1d(nn.Module):
    """Depthwise Kaiser-sinc low-pass with optional stride; replicate padding keeps the length (/stride)."""

    def __init__(
        self,
        cutoff: float = 0.5,
        half_width: float = 0.6,
        stride: int = 1,
        padding: bool = True,
        padding_mode: str = "replicate",
        kernel_size: int = 12,
    ):
        super().__init__()
        if cutoff < 0.0:
            raise ValueError("cutoff must be >= 0")
        if cutoff > 0.5:
            raise ValueError("cutoff above 0.5 (Nyquist) makes no sense")
        self.kernel_size = kernel_size
        self.even = kernel_size % 2 == 0
        self.pad_left = kernel_size // 2 - int(self.even)
        self.pad_right = kernel_size // 2
        self.stride = stride
        self.padding = padding
        self.padding_mode = padding_mode
        self.register_buffer("filter", kaiser_sinc_filter1d(cutoff, half_width, kernel_size))

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        if self.padding:
            x = F.pad(x, (self.pad_left, self.pad_right), mode=self.padding_mode)
        return F.conv1d(x, self.filter.expand(channels, -1, -1), stride=self.stride, groups=channels)

    def needs(self, lo: int, hi: int) -> tuple[int, int]:
        """Input samples that output samples [lo, hi] read (negative / past-the-end: padding)."""
        left = self.pad_left if self.padding else 0
        return lo * self.stride - left, hi * self.stride + self.kernel_size - 1 - left


class UpSample1d(nn.Module):
    """x [B, C, T] -> [B, C, T * ratio]: zero-stuff and interpolate with a Kaiser-sinc (replicate-padded)."""

    def __init__(self, ratio: int = 2, kernel_size: int | None = None):
        super().__init__()
        self.ratio = ratio
        self.kernel_size = int(6 * ratio // 2) * 2 if kernel_size is None else kernel_size
        self.stride = ratio
        self.pad = self.kernel_size // ratio - 1
        self.pad_left = self.pad * self.stride + (self.kernel_size - self.stride) // 2
        self.pad_right = self.pad * self.stride + (self.kernel_size - self.stride + 1) // 2
        self.register_buffer(
            "filter", kaiser_sinc_filter1d(cutoff=0.5 / ratio, half_width=0.6 / ratio, kernel_size=self.kernel_size)
        )

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = self.ratio * F.conv_transpose1d(
            x, self.filter.expand(channels, -1, -1), stride=self.stride, groups=channels
        )
        return x[..., self.pad_left : -self.pad_right]

    def needs(self, lo: int, hi: int) -> tuple[int, int]:
        """Input samples that output samples [lo, hi] read: full output n = i * ratio + m, m in [0, K)."""
        first = -(-(lo + self.pad_left - self.kernel_size + 1) // self.ratio)
        last = (hi + self.pad_left) // self.ratio
        return first - self.pad, last - self.pad


class DownSample1d(nn.Module):
    """x [B, C, T] -> [B, C, T / ratio]: Kaiser-sinc low-pass, then keep every ratio-th sample."""

    def __init__(self, ratio: int = 2, kernel_size: int | None = None):
        super().__init__()
        self.ratio = ratio
        self.kernel_size = int(6 * ratio // 2) * 2 if kernel_size is None else kernel_size
        self.lowpass = LowPassFilter1d(
            cutoff=0.5 / ratio, half_width=0.6 / ratio, stride=ratio, kernel_size=self.kernel_size
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.lowpass(x)

    def needs(self, lo: int, hi: int) -> tuple[int, int]:
        return self.lowpass.needs(lo, hi)


class Activation1d(nn.Module):
    """Anti-aliased activation: upsample (up_ratio), `act`, downsample (down_ratio). x [B, C, T] -> [B, C, T]."""

    def __init__(
        self,
        activation: nn.Module,
        up_ratio: int = 2,
        down_ratio: int = 2,
        up_kernel_size: int = 12,
        down_kernel_size: int = 12,
    ):
        super().__init__()
        self.up_ratio = up_ratio
        self.down_ratio = down_ratio
        self.act = activation
        self.upsample = UpSample1d(up_ratio, up_kernel_size)
        self.downsample = DownSample1d(down_ratio, down_kernel_size)

    def forward(self, x: Tensor, span: Span = _NO_SPAN, rate: int = 1) -> Tensor:
        """`rate`: samples per mel frame of x; the activation runs at rate * up_ratio."""
        x = self.upsample(span.edge(x, rate))
        x = self.act(x)
        return self.downsample(span.edge(x, rate * self.up_ratio))

    def needs(self, lo: int, hi: int) -> tuple[int, int]:
        """Input samples that output samples [lo, hi] read, through both filters."""
        return self.upsample.needs(*self.downsample.needs(lo, hi))
