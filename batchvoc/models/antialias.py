"""BigVGAN's anti-aliased activation: upsample 2x with a Kaiser-windowed sinc, activate, low-pass and decimate.

Semantics follow NVIDIA/BigVGAN's alias_free_activation/torch (itself after junjun3518/alias-free-torch and
julius' low-pass design). Module and buffer names are upstream's: `Activation1d.act`, `.upsample.filter`,
`.downsample.lowpass.filter`; both filters are persistent buffers, so they are in upstream's state dicts.

Both resampling filters pad with *replicate*; inside a window, `Span.edge` re-creates that padding at the
utterance's edges (at the input rate before upsampling, at the upsampled rate before the low-pass).
"""

from __future__ import annotations

import functools
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
    target = torch.get_default_device()  # meta for an actor's skeleton (runner/worker.skeleton)
    with torch.device("cpu"):  # on the meta device the taps' arithmetic would import torch._dynamo
        taps = _taps(cutoff, half_width, kernel_size)
    return taps.view(1, 1, kernel_size).to(target, copy=True)  # a copy: the cached taps stay as made


@functools.cache
def _taps(cutoff: float, half_width: float, kernel_size: int) -> Tensor:
    """The [kernel_size] taps, made once per design (a BigVGAN has ~200 filters of two designs: 0.7 s of an actor's
    start made one by one)."""
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
    return taps


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


def _up_phases(up: UpSample1d) -> tuple[list[int], list[list[float]]]:
    """UpSample1d as polyphase taps: out[r*j + p] = sum_k taps[p][k] * x[clamp(j + first[p] + k)] (replicate pad).

    Derived from the transposed conv: full output n = i*r + m reads padded input i with tap m; the kept output
    r*j + p is full output n = r*j + p + pad_left, and padded input i is x[clamp(i - pad)]. The ratio is folded in.
    """
    r, k_size, f = up.ratio, up.kernel_size, up.filter.detach().double().flatten().tolist()
    first, taps = [], []
    for p in range(r):
        pairs = sorted(
            ((p + up.pad_left - m) // r - up.pad, m) for m in range(k_size) if (p + up.pad_left - m) % r == 0
        )
        offsets = [o for o, _ in pairs]
        if offsets != list(range(offsets[0], offsets[0] + len(offsets))):
            raise ValueError("polyphase taps are not contiguous")
        first.append(offsets[0])
        taps.append([r * f[m] for _, m in pairs])
    if len({len(t) for t in taps}) != 1:
        raise ValueError("every phase needs the same number of taps (kernel_size a multiple of ratio)")
    return first, taps


class PolyphaseActivation1d(nn.Module):
    """Activation1d, same function, written as index arithmetic that a compiler fuses (no convolutions).

    The 2x Kaiser upsampler is polyphase (each output phase a few-tap sum of shifted input samples), the strided
    low-pass is a sum of shifted samples, and replicate padding plus `Span.edge` are one clamped index per tap
    (edge index of the replicate-clamped position, as in the reference's edge-then-pad). Every filter tap runs in
    float32 (at least), and the activation's output is rounded to x's dtype before the low-pass, as in the
    reference. Built from an Activation1d (`from_module`); used by the engines, never in the reference models.
    """

    def __init__(self, base: Activation1d):
        super().__init__()
        up, low = base.upsample, base.downsample.lowpass
        if not low.padding or low.padding_mode != "replicate":
            raise ValueError("PolyphaseActivation1d needs a replicate-padded low-pass")
        self.act = base.act
        self.up_ratio, self.down_ratio = base.up_ratio, base.down_ratio
        self.up_first, self.up_taps = _up_phases(up)
        self.down_taps = low.filter.detach().double().flatten().tolist()
        self.down_left = low.pad_left
        self._needs = base.needs

    @classmethod
    def from_module(cls, base: Activation1d) -> PolyphaseActivation1d:
        return cls(base)

    def needs(self, lo: int, hi: int) -> tuple[int, int]:
        return self._needs(lo, hi)

    def _indices(self, x: Tensor, span: Span, rate: int) -> tuple[Tensor, Tensor, Tensor]:
        """(up_index [B|1, 1, n*rT], up_taps [1, 1, n, rT] float32, down_index [B|1, 1, K*T']) for x's length.

        They depend only on the span, the rate and the length, so one set serves every activation of a stage:
        they are kept on the span (a model's forward makes one Span per call)."""
        length = x.shape[-1]
        key = ("polyphase", rate, length, self.up_ratio, tuple(self.up_first), len(self.down_taps), self.down_left)
        cache = span._cache if span is not _NO_SPAN else {}
        if key not in cache:
            r, s = self.up_ratio, self.down_ratio
            up_len = length * r
            out_len = -(-up_len // s)
            n = len(self.up_taps[0])
            # upsample: output m = r*j + p reads x at edge(clamp(j + first[p] + k)), k < n
            edge = span.edge_index(x, rate)  # [B|1, 1, T]
            m = torch.arange(up_len, device=x.device)
            j, p = m // r, m % r
            first = torch.tensor(self.up_first, device=x.device)[p]
            k = torch.arange(n, device=x.device).view(-1, 1)
            pos = torch.clamp(j + first + k, 0, length - 1).view(1, 1, -1)  # [1, 1, n * rT], k-major
            up_index = torch.gather(edge, -1, pos.expand(edge.shape[0], 1, -1))
            taps = torch.tensor(self.up_taps, dtype=torch.float32, device=x.device)  # [r, n]
            up_taps = taps.t()[:, p].reshape(1, 1, n, up_len)
            # low-pass and decimate: output j reads the activation at edge2(clamp(s*j - left + k)), k < K
            edge2 = span.edge_index(x, rate * r, up_len)  # [B|1, 1, rT]
            kd = torch.arange(len(self.down_taps), device=x.device).view(-1, 1)
            pos2 = torch.clamp(torch.arange(out_len, device=x.device) * s - self.down_left + kd, 0, up_len - 1)
            down_index = torch.gather(edge2, -1, pos2.view(1, 1, -1).expand(edge2.shape[0], 1, -1))
            cache[key] = (up_index, up_taps, down_index)
        return cache[key]

    def forward(self, x: Tensor, span: Span = _NO_SPAN, rate: int = 1) -> Tensor:
        rows, channels, length = x.shape
        work = torch.promote_types(x.dtype, torch.float32)
        up_index, up_taps, down_index = self._indices(x, span, rate)
        n, up_len = up_taps.shape[-2:]
        g = torch.gather(x, -1, up_index.expand(rows, channels, -1)).view(rows, channels, n, up_len)
        u = (g.to(work) * up_taps.to(work)).sum(2)  # n (6) terms: unrolled by Inductor
        a = self.act(u).to(x.dtype)
        taps = len(self.down_taps)
        out_len = down_index.shape[-1] // taps
        g = torch.gather(a, -1, down_index.expand(rows, channels, -1)).view(rows, channels, taps, out_len).to(work)
        y = None
        for lo in range(0, taps, 6):  # sums of <= 6 terms, each unrolled (a longer sum would be a reduction kernel)
            hi = min(lo + 6, taps)
            d = torch.tensor(self.down_taps[lo:hi], dtype=work, device=x.device).view(1, 1, -1, 1)
            part = (g[:, :, lo:hi] * d).sum(2)
            y = part if y is None else y + part
        return y.to(x.dtype)
