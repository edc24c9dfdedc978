"""Engine-side rewrites of a vocoder that compute the same function faster on a GPU; the reference models stay
upstream-shaped and these apply to the engine's own copy.

channels_last_2d(model): every nn.Conv1d / nn.ConvTranspose1d becomes the equivalent 2-D convolution with a
(1, k) kernel whose weights are channels-last, run on x.unsqueeze(2). Activations stay logically [B, C, T] but
carry channels-last strides (memory [B, T, C]); elementwise ops and Span keep those strides, so cuDNN (and
Inductor) run NHWC convolutions without the NCHW <-> NHWC transposes that 1-D convolutions pay around every call.
A transposed conv of groups 1 and dilation 1 (every upsampler) runs as the forward conv of its s phases instead
(PolyphaseConvTranspose1d), whose channels-last output is already the interleaved [B, T, C] memory.

fused_antialias(model, method): every BigVGAN Activation1d (Snake / SnakeBeta, ratios 2) becomes a
FusedActivation1d (engines/fused_antialias.py), opaque to the compiler: antialias=fused is two Triton kernels per
activation; antialias=fused1 one kernel whose low-pass is a banded matrix product on tensor cores (method "dot"),
fused1g one kernel with on-chip shifts by tl.gather (method "gather"), fused1r one kernel that recomputes the shifted
values (method "recompute"). The one-pass choices stay opt-in until measured on a GPU.

polyphase_antialias(model): every BigVGAN Activation1d becomes a PolyphaseActivation1d (same function as index
arithmetic, no depthwise convolutions), for Inductor to fuse; slower than the stock one on an H100 (kept opt-in).

fused_resblocks(model): every HiFi-GAN ResBlock1 / ResBlock2 of at most `fused_max_channels` (engine option; default
fused_resblock.FUSED_MAX_CHANNELS) channels becomes a FusedResBlock (tiles from the `tile_table` option): one Triton
kernel per conv, with the leaky ReLU, the span's zeroing, the bias and the residual add inside it
(engines/fused_resblock.py); wider blocks keep cuDNN's convolutions (resblocks="fused_wide": as WideResBlocks,
engines/wide_resblock.py, handing on activated rows only; opt-in: 3.8% slower on an H200, session 25). With the
`superrows` option (an int, default 0: off) their convs at 16 / 32 / 64 channels reaching at most that many super-rows
each side run as block-Toeplitz products of 128-wide super-rows instead (engines/superrow.py), opt-in until a GPU
session measures them. The same rewrite computes a HiFi-GAN's conv_post (one output channel) with its own Triton
kernel (engines/post_conv.py, PostConv), and its upsamplers of at most fused_upsample.MAX_CHANNELS (128) channels in
and phases out as one same-padded fused conv (engines/fused_upsample.py, FusedUpsample); BigVGAN keeps cuDNN's.

`choose(layout, antialias, resblocks, device, backend, fused_max_channels, tile_table, superrows)` resolves "auto"
into a `Rewrites`; `apply(model, rewrites)` applies them to a deep copy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from batchvoc.backends import CHOICES
from batchvoc.engines import fused_resblock, fused_upsample
from batchvoc.engines.first_convs import share_first_convs
from batchvoc.engines.fused_antialias import FusedActivation1d
from batchvoc.engines.fused_resblock import FusedResBlock, TileTable
from batchvoc.engines.fused_upsample import FusedUpsample
from batchvoc.engines.post_conv import PostConv
from batchvoc.engines.triton_runtime import triton_available
from batchvoc.engines.upsample_phases import PolyphaseConvTranspose1d, in_phases, rows_2d
from batchvoc.engines.wide_resblock import WideResBlock
from batchvoc.models.antialias import Activation1d, PolyphaseActivation1d
from batchvoc.models.hifigan import ResBlock1, ResBlock2

LAYOUTS = CHOICES["layout"]
ANTIALIAS = CHOICES["antialias"]
FUSED_METHODS = {"fused": "two_pass", "fused1": "dot", "fused1g": "gather", "fused1r": "recompute"}  # -> method
RESBLOCKS = CHOICES["resblocks"]
FUSED_RESBLOCKS = ("fused", "fused_wide")  # the values that rewrite resblocks (fused_resblocks)
FAST_BACKENDS = ("inductor", "aoti")  # compiled backends that get the GPU rewrites by default
# Dilated same-padded convs of at least this many taps run folded into d undilated ones (Conv1dAs2d)
FOLD_MIN_KSIZE = 7


@dataclass(frozen=True)
class Rewrites:
    """The engine-side rewrites of one engine's model: layout, anti-aliased activations, HiFi-GAN resblocks (fused
    up to fused_max_channels channels, tiles from tile_table, convs over super-rows up to superrows each side)."""

    layout: str = "ncl"
    antialias: str = "conv"
    resblocks: str = "conv"
    fused_max_channels: int = fused_resblock.FUSED_MAX_CHANNELS
    tile_table: TileTable = field(default_factory=TileTable, compare=False)
    superrows: int = 0

    @property
    def none(self) -> bool:
        return (self.layout, self.antialias, self.resblocks) == ("ncl", "conv", "conv")

    @property
    def fused(self) -> bool:
        """Whether the model calls batchvoc's kernel operators (fused anti-aliasing or resblocks)."""
        return self.antialias in FUSED_METHODS or self.resblocks in FUSED_RESBLOCKS

    def key(self) -> dict:
        """What a cached package depends on (JSON-able); superrows only where on, so keys made before it stay."""
        table = {",".join(map(str, k)): v for k, v in sorted(self.tile_table.table.items())}
        key = dict(layout=self.layout, antialias=self.antialias, resblocks=self.resblocks,
                   fused_max_channels=self.fused_max_channels, tile_table=table)  # fmt: skip
        return key | ({"superrows": self.superrows} if self.superrows else {})


def phase_view(x: Tensor, d: int) -> Tensor:
    """x [B, C, 1, T] (T a multiple of d) as [B, C, T / d, d]: column j holds the samples t = j mod d. A view for any
    strides of x, made with as_strided rather than reshape: a compiler must then give x the strides it has in
    eager mode (channels-last rows), while Inductor laid out a reshaped intermediate as [B, C, T] and copied it to
    channels-last for the conv: 0.6 ms per gsv_v4 forward (B=16, fp16, H200), whose inductor engine went from 3,994x
    to 4,078x real time (BENCHMARKS.md, session 17)."""
    rows, channels, _, length = x.shape
    sb, sc, _, st = x.stride()
    return x.as_strided((rows, channels, length // d, d), (sb, sc, d * st, st))  # x's storage offset


class Conv1dAs2d(nn.Module):
    """An nn.Conv1d computed as a channels-last Conv2d with a (1, k) kernel: [B, C, T] -> [B, O, T'] (NLC strides).

    A same-padded stride-1 conv of dilation d > 1 and at least FOLD_MIN_KSIZE taps runs folded instead: x's time
    axis seen as [T / d, d] (a free view of channels-last rows; x zero-padded to a multiple of d first), whose
    columns are the d phases t mod d, each convolved undilated along the rows by a (k, 1) kernel. Same sums: tap j
    of output t reads t + (j - (k-1)/2) d, row q + j - (k-1)/2 of its own phase. cuDNN's NHWC kernels run dilated
    convolutions slower than undilated ones of the same size: folded, they ran at the undilated ones' speed (H200,
    fp16, B=16, gsv_v4's 128- and 256-channel stages: k=11 d=3 and d=5 0.71-0.74x the dilated time, k=7 d=5 0.73-0.75x;
    k=3 no faster; BENCHMARKS.md session 15, benchmarks/dilated_convs.py), and gsv_v4 fp16 under inductor ran
    3,956x -> 4,035x real time."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError("Conv1dAs2d supports numeric zero padding only")
        self.stride, self.padding = (1, conv.stride[0]), (0, conv.padding[0])
        self.dilation, self.groups = (1, conv.dilation[0]), conv.groups
        k, d, p = conv.kernel_size[0], conv.dilation[0], conv.padding[0]
        self.fold = conv.stride[0] == 1 and d > 1 and k >= FOLD_MIN_KSIZE and 2 * p == d * (k - 1)
        # [O, C / groups, 1, k], or folded [O, C / groups, k, 1]; made channels-last from the 4-D shape itself (a
        # transposed view of the other, channels-last only up to its size-1 axis, was misread by the CPU's grouped conv)
        weight = conv.weight.detach().unsqueeze(3 if self.fold else 2)
        self.weight = nn.Parameter(weight.contiguous(memory_format=torch.channels_last), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.fold:
            return self._folded(rows_2d(x))
        y = F.conv2d(rows_2d(x), self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return y.squeeze(2)

    def _folded(self, x: Tensor) -> Tensor:
        """x [B, C, 1, T] channels-last -> [B, O, T]: the dilated conv as an undilated one per phase (class doc)."""
        rows, _, _, length = x.shape
        d = self.dilation[1]
        pad = -length % d
        if pad:
            x = F.pad(x, (0, pad))
        y = F.conv2d(phase_view(x, d), self.weight, self.bias, 1, (self.padding[1] // d, 0), 1, self.groups)
        return y.reshape(rows, y.shape[1], length + pad)[..., :length]


class ConvTranspose1dAs2d(nn.Module):
    """An nn.ConvTranspose1d computed as a channels-last ConvTranspose2d with a (1, k) kernel."""

    def __init__(self, conv: nn.ConvTranspose1d):
        super().__init__()
        if conv.padding_mode != "zeros":
            raise ValueError("ConvTranspose1dAs2d supports zero padding only")
        self.stride, self.padding = (1, conv.stride[0]), (0, conv.padding[0])
        self.output_padding, self.dilation = (0, conv.output_padding[0]), (1, conv.dilation[0])
        self.groups = conv.groups
        self.weight = nn.Parameter(
            conv.weight.detach().unsqueeze(2).contiguous(memory_format=torch.channels_last), requires_grad=False
        )
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv_transpose2d(
            rows_2d(x), self.weight, self.bias, self.stride, self.padding, self.output_padding, self.groups,
            self.dilation,
        )  # fmt: skip
        return y.squeeze(2)


def _replace(model: nn.Module, make) -> int:
    """Replace, in place, every submodule for which make(module) returns a module; returns the count."""
    count = 0
    for name, child in list(model.named_children()):
        new = make(child)
        if new is not None:
            setattr(model, name, new)
            count += 1
        else:
            count += _replace(child, make)
    return count


def channels_last_2d(model: nn.Module, inplace: bool = False) -> nn.Module:
    """model (copied unless inplace) with every Conv1d / ConvTranspose1d as a channels-last (1, k) 2-D conv, and
    every fused module set to take channels-last rows (triton_runtime.channels_last_rows)."""
    model = model if inplace else copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, FusedActivation1d | FusedResBlock | PostConv | FusedUpsample):
            m.channels_last = True

    def make(m):
        if type(m) is nn.Conv1d:
            return Conv1dAs2d(m)
        if type(m) is nn.ConvTranspose1d:
            return PolyphaseConvTranspose1d(m) if in_phases(m) else ConvTranspose1dAs2d(m)
        return None

    _replace(model, make)
    return model


def polyphase_antialias(model: nn.Module, inplace: bool = False) -> nn.Module:
    """model (copied unless inplace) with every Activation1d as a PolyphaseActivation1d (same function)."""
    model = model if inplace else copy.deepcopy(model)
    _replace(model, lambda m: PolyphaseActivation1d.from_module(m) if type(m) is Activation1d else None)
    return model


def fused_antialias(model: nn.Module, inplace: bool = False, method: str = "two_pass") -> nn.Module:
    """model (copied unless inplace) with every Activation1d as a FusedActivation1d computed by `method` (same
    function)."""
    model = model if inplace else copy.deepcopy(model)
    _replace(model, lambda m: FusedActivation1d(m, method) if type(m) is Activation1d else None)
    return model


def fused_resblocks(model: nn.Module, inplace: bool = False, max_channels: int | None = None,
                    tile_table: TileTable | None = None, superrows: int = 0,
                    wide: bool = False) -> nn.Module:  # fmt: skip
    """model (copied unless inplace) with every ResBlock1 / ResBlock2 of at most max_channels (default
    fused_resblock.FUSED_MAX_CHANNELS) channels as a FusedResBlock (same audio), tiles from tile_table, convs over
    super-rows up to `superrows` each side (0: none), the conv_post of every HiFi-GAN in it (`_has_post_conv`) as a
    PostConv, whatever its width, and its upsamplers that fused_upsample.fits within fused_upsample.MAX_CHANNELS as
    FusedUpsample; a fused stage's two widest first convs run side by side (first_convs.share_first_convs). wide:
    the wider blocks become WideResBlocks (engines/wide_resblock.py), else they stay as they are."""
    model = model if inplace else copy.deepcopy(model)
    max_channels = fused_resblock.FUSED_MAX_CHANNELS if max_channels is None else max_channels
    generators = [m for m in model.modules() if _has_post_conv(m)]  # before their resblocks are replaced

    def make(m):
        if type(m) not in (ResBlock1, ResBlock2):
            return None
        if m.channels <= max_channels:
            return FusedResBlock(m, tile_table, superrows)
        return WideResBlock(m) if wide else None

    _replace(model, make)
    for m in generators:
        share_first_convs([list(m.stage_blocks(i)) for i in range(len(m.ups))])
        m.conv_post = PostConv(m.conv_post)
        m.ups = nn.ModuleList(FusedUpsample(up) if fused_upsample.fits(up, fused_upsample.MAX_CHANNELS) else up
                              for up in m.ups)  # fmt: skip
    return model


def _has_post_conv(m: nn.Module) -> bool:
    """Whether m is a HiFi-GAN generator (it holds ResBlock1 / ResBlock2) whose conv_post is an nn.Conv1d to one
    channel. BigVGAN's conv_post (the same layer) stays cuDNN's: resblocks=fused rewrites HiFi-GAN's layers only."""
    conv = getattr(m, "conv_post", None)
    return type(conv) is nn.Conv1d and conv.out_channels == 1 and has_resblocks(m)


def has_antialias(model: nn.Module) -> bool:
    return any(isinstance(m, Activation1d) for m in model.modules())


def has_resblocks(model: nn.Module) -> bool:
    return any(isinstance(m, ResBlock1 | ResBlock2) for m in model.modules())


def _pick(value: str, known: tuple[str, ...], name: str, auto: str) -> str:
    if value not in known:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(known)}")
    return auto if value == "auto" else value


def choose(layout: str = "auto", antialias: str = "auto", resblocks: str = "auto", device="cpu",
           backend: str = "eager", fused_max_channels: int | str | None = None,
           tile_table: dict | str | TileTable | None = None,
           superrows: int | str | None = None) -> Rewrites:  # fmt: skip
    """Resolve "auto": inductor or aoti on a CUDA GPU gets channels_last_2d and, with triton, the fused anti-aliased
    activation and fused resblocks; everything else the reference. Raises ValueError for an unknown value.

    antialias=polyphase stays opt-in: slower on an H100 (BigVGAN v2 24k under torch.compile 132x real time against
    242x for the stock activation; BENCHMARKS.md). antialias=fused1 / fused1g / fused1r (one-pass kernels) too,
    until a GPU run measures them against fused.
    """
    fast = backend in FAST_BACKENDS and torch.device(device).type == "cuda"
    fused = "fused" if fast and triton_available()[0] else "conv"
    limit = fused_resblock.FUSED_MAX_CHANNELS if fused_max_channels is None else int(fused_max_channels)
    if limit < 0:
        raise ValueError(f"fused_max_channels must be 0 or more, not {limit}")
    table = tile_table if isinstance(tile_table, TileTable) else TileTable(tile_table)
    reach = int(superrows or 0)
    if reach < 0:
        raise ValueError(f"superrows must be 0 or more, not {reach}")
    return Rewrites(
        _pick(layout, LAYOUTS, "layout", "channels_last_2d" if fast else "ncl"),
        _pick(antialias, ANTIALIAS, "antialias", fused),
        _pick(resblocks, RESBLOCKS, "resblocks", fused),
        limit,
        table,
        reach,
    )


def apply(model: nn.Module, rewrites: Rewrites) -> nn.Module:
    """A copy of model with the chosen rewrites; the caller's model is untouched."""
    model = copy.deepcopy(model)
    if rewrites.antialias == "polyphase":
        polyphase_antialias(model, inplace=True)
    elif rewrites.antialias in FUSED_METHODS:
        fused_antialias(model, inplace=True, method=FUSED_METHODS[rewrites.antialias])
    if rewrites.resblocks in FUSED_RESBLOCKS:
        fused_resblocks(model, inplace=True, max_channels=rewrites.fused_max_channels, tile_table=rewrites.tile_table,
                        superrows=rewrites.superrows, wide=rewrites.resblocks == "fused_wide")  # fmt: skip
    if rewrites.layout == "channels_last_2d":
        channels_last_2d(model, inplace=True)
    return model


def describe(rewrites: Rewrites, model: nn.Module) -> str:
    parts = [f"layout={rewrites.layout}"]
    if has_antialias(model):
        parts.append(f"antialias={rewrites.antialias}")
    if has_resblocks(model):
        fused = rewrites.resblocks in FUSED_RESBLOCKS
        parts.append(f"resblocks={rewrites.resblocks}" + (f"<={rewrites.fused_max_channels}ch" if fused else ""))
        if fused and rewrites.tile_table:
            parts.append(f"tile_table={len(rewrites.tile_table.table)} layers")
        if fused and rewrites.superrows:
            parts.append(f"superrows<={rewrites.superrows}")
    return " ".join(parts)
