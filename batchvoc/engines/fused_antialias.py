"""BigVGAN's anti-aliased Snake as Triton kernels (two passes, or one), for the engines' copy of a model on a GPU.

Activation1d (models/antialias.py) runs replicate-pad, a depthwise transposed convolution, Snake, pad and a
depthwise strided convolution: on an H100 about 80% of BigVGAN's time, mostly cuDNN's grouped kernels and the
copies between them. Here the same function is two passes over memory:

    up_snake:   a[b, c, m] = snake(sum_k taps[m % 2][k] * x[b, c, E(clamp(m // 2 + first[m % 2] + k))])   [B, C, 2T]
    down:       y[b, c, j] = sum_k down[k] * a[b, c, E2(clamp(2j - left + k))]                              [B, C, T]

where E / E2 map a sample to the nearest sample of its own utterance (`Span.edge`, at the input and the upsampled
rate) and the clamps are the filters' replicate padding. Filter taps and Snake run in float32; `a` is stored in
x's dtype, as the reference rounds the activation's output. In fp16/bf16 the sine is the GPU's sin.approx after
reduction to [-pi, pi] (abs error ~1e-6, far below that storage precision); fp32 keeps the accurate sine. Both
kernels take any strides (channels-last or not) and write their output with x's layout. Two versions of the pair
(TWO_PASS_TILES picks one, with its tiles): "v1" (`up_snake` per 2x-rate row, `down`) and "pairs" (`up_pairs`
computes rows 2j and 2j + 1 from one read of x's window, `down_inside`; both skip the edge arithmetic on tiles whose
window lies inside the row and one utterance, and mark channels-last rows 16-byte aligned where they are). Same
arithmetic in the same order: bit for bit the same output.

One pass (`antialiased_snake_one_pass`, METHODS "recompute" | "gather" | "dot"): one kernel computes y for a tile
of outputs with `a` on chip, never in memory (about 4 bytes per element moved in fp16 instead of 12): "recompute"
evaluates `a` anew at each of the low-pass's positions (6x the up-work, no data movement between threads);
"gather" evaluates it once over the tile's 2x-rate positions (edges applied) and reads each tap's rows with
tl.gather (Triton makes that warp shuffles); "dot" takes the same rows through the low-pass as one banded matrix
product on tensor cores, each float32 tap split into 2 (fp16) or 3 (bf16) terms of x's dtype so the sum keeps
float32 taps (fp32: an IEEE product). Same semantics and rounding of `a` as the two kernels ("dot" sums in another
order); tiles from ONE_PASS_TILES.

`antialiased_snake` and `antialiased_snake_one_pass` are torch operators made with torch.library.triton_op
(engines/ops.py): torch.compile and AOTInductor see their kernel launches and compile the kernels into their own
code. On a CPU they run the same index arithmetic in plain torch, which is also what the tests compare the kernels
with. With TRITON_INTERPRET=1 the kernels run on CPU tensors through Triton's interpreter (slow; for tests).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import Tensor, nn

from batchvoc.engines.ops import kernel_op
from batchvoc.engines.triton_runtime import channels_last_rows, launcher, pow2_between, span_launch_args, use_triton
from batchvoc.models.activations import Snake, SnakeBeta
from batchvoc.models.antialias import Activation1d, _up_phases
from batchvoc.models.span import Span


class Tile(NamedTuple):
    """A launch: block along time (two-pass: 2x-rate rows for "v1"'s up kernel, x rows for "pairs"', outputs for the
    low-pass; one-pass: outputs for "recompute", 2x-rate rows on chip for "gather" and "dot"), block along channels
    (at most; narrower layers get the power of two that covers them), warps."""

    block_t: int
    block_c: int
    num_warps: int


class TwoPass(NamedTuple):
    """The two-pass launches: kernels "v1" (up_snake + down) or "pairs" (up_pairs + down_inside: each x row read
    once for both phases, interior tiles without edge arithmetic, 16-byte channels-last access), and their tiles.
    divide ("pairs" only): channel blocks of the largest power of two (8 .. the tile's) dividing the channels, so no
    lane idles (96 = 3 x 32, 24 = 3 x 8), the grid walking a time tile's channel blocks first."""

    kernels: str
    up: Tile
    down: Tile
    divide: bool = False


TWO_PASS_KERNELS = ("v1", "pairs")
# channels-last -> TwoPass. Channels-last: the best of `benchmarks/antialias_sweep.py fp16 150` on an H200 (session
# 9, 2026-11-30; triton 3.6; BigVGAN v2 24k's six stages, batch 16, 938 frames, per-frame span): activations per
# batch pairs 48.0 ms (each kernel 1.8-3.2 TB/s) against v1 (32, 64, 4) 148.1 ms, which the kernels ran with through
# H200 session 3 (its C=24 stage alone 4.7 ms: 2-byte accesses). Narrower channel blocks keep the tile's area.
# Contiguous: v1 with the tile it always had.
TWO_PASS_TILES: dict[bool, TwoPass] = {
    True: TwoPass("pairs", Tile(32, 64, 8), Tile(32, 64, 4)),
    False: TwoPass("v1", Tile(256, 4, 4), Tile(256, 4, 4)),
}


def _two_pass_block(x: Tensor, tile: Tile, divide: bool = False) -> tuple[int, int]:
    """(block along time, block along channels) of a two-pass tile for x: channels-last narrows the channel block to
    the power of two covering x's channels (at least 16), or with `divide` to the largest power of two from 8 to the
    tile's dividing them (if one does), and lengthens the time block to keep the tile's area."""
    if x.stride(1) != 1:
        return tile.block_t, tile.block_c
    block_c = pow2_between(x.shape[1], 16, tile.block_c)
    if divide:
        block_c = next((b for b in (128, 64, 32, 16, 8) if b <= tile.block_c and x.shape[1] % b == 0), block_c)
    return tile.block_t * tile.block_c // block_c, block_c


def _grid(time_tiles: int, channel_tiles: int, rows: int, c_first: bool) -> tuple[int, int, int]:
    return (channel_tiles, time_tiles, rows) if c_first else (time_tiles, channel_tiles, rows)


def _alignment(x: Tensor, *others: Tensor) -> int:
    """The largest of 8, 4, 2, 1 dividing x's channels and every tensor's time stride when all are channels-last
    (then each time step's channels start on that many elements); 1 otherwise."""
    if any(t.stride(1) != 1 for t in (x, *others)):
        return 1
    align = 8
    while any(v % align for v in (x.shape[1], *(t.stride(2) for t in (x, *others)))):
        align //= 2
    return align


def _triton_forward(x, alpha, inv, valid, rate, up_taps, up_first, down_taps, down_left,
                    tiles: TwoPass | None = None) -> Tensor:  # fmt: skip
    """y [B, C, T] (x's layout) from two launches; tiles: None for TWO_PASS_TILES' (the sweep passes others)."""
    tiles = tiles or TWO_PASS_TILES[x.stride(1) == 1]
    if tiles.kernels not in TWO_PASS_KERNELS:
        raise ValueError(f"unknown two-pass kernels {tiles.kernels!r}; choose one of {', '.join(TWO_PASS_KERNELS)}")
    a = _launch_up(x, alpha, inv, valid, rate, up_taps, up_first, tiles)
    return _launch_down(a, x, valid, rate, down_taps, down_left, tiles)


def _launch_up(x, alpha, inv, valid, rate, up_taps, up_first, tiles: TwoPass) -> Tensor:
    """The first pass: a [B, C, 2T] (x's layout), the upsampled Snake."""
    from batchvoc.engines import antialias_kernels as kernels  # imports triton: GPU path only

    rows, channels, length = x.shape
    valid, vs, has_span = span_launch_args(valid, x)
    if x.stride(1) == 1:  # keep x's channels-last layout
        a = torch.empty((rows, 2 * length, channels), dtype=x.dtype, device=x.device).transpose(1, 2)
    else:
        a = torch.empty((rows, channels, 2 * length), dtype=x.dtype, device=x.device)
    pairs = tiles.kernels == "pairs"
    block_t, block_c = _two_pass_block(x, tiles.up, pairs and tiles.divide)
    grid = _grid(kernels.triton.cdiv(length if pairs else 2 * length, block_t), kernels.triton.cdiv(channels, block_c),
                 rows, pairs and tiles.divide)  # fmt: skip
    up, block = (kernels.up_pairs, dict(BLOCK_T=block_t, ALIGN=_alignment(x, a), C_FIRST=tiles.divide)) if pairs else (
        kernels.up_snake, dict(BLOCK_M=block_t))  # fmt: skip
    up = launcher(up, x)  # traced (torch.compile, AOTInductor): a launch the compiler takes over
    up[grid](x, a, alpha, inv, up_taps, valid, channels, length, rate, *x.stride(), *a.stride(), *vs,
             FIRST0=up_first[0], FIRST1=up_first[1], TAPS=up_taps.shape[1], HAS_SPAN=has_span,
             FAST_SIN=x.dtype != torch.float32 and x.is_cuda, BLOCK_C=block_c, num_warps=tiles.up.num_warps,
             **block)  # fmt: skip
    return a


def _launch_down(a, x, valid, rate, down_taps, down_left, tiles: TwoPass) -> Tensor:
    """The second pass: y [B, C, T] (x's layout) low-passed and decimated from a [B, C, 2T]."""
    from batchvoc.engines import antialias_kernels as kernels  # imports triton: GPU path only

    rows, channels, length = x.shape
    valid, vs, has_span = span_launch_args(valid, x)
    y = torch.empty_like(x)
    pairs = tiles.kernels == "pairs"
    block_t, block_c = _two_pass_block(x, tiles.down, pairs and tiles.divide)
    grid = _grid(kernels.triton.cdiv(length, block_t), kernels.triton.cdiv(channels, block_c), rows,
                 pairs and tiles.divide)  # fmt: skip
    down, extra = (kernels.down_inside, dict(ALIGN=_alignment(a, y), C_FIRST=tiles.divide)) if pairs else (
        kernels.down, {})  # fmt: skip
    down = launcher(down, x)  # as `up` in _launch_up
    down[grid](a, y, down_taps, valid, channels, length, rate, *a.stride(), *y.stride(), *vs, LEFT=down_left,
               TAPS=down_taps.numel(), HAS_SPAN=has_span, BLOCK_T=block_t, BLOCK_C=block_c,
               num_warps=tiles.down.num_warps, **extra)  # fmt: skip
    return y


METHODS = ("recompute", "gather", "dot")
PARTS = {torch.float32: 1, torch.float16: 2, torch.bfloat16: 3}  # "dot": terms of x's dtype per float32 tap

# (method, channels-last) -> Tile. Channels-last: the best of `benchmarks/antialias_sweep.py fp16 150` on an H200
# (session 9, 2026-11-30, kernels with the interior fast path; same shapes as TWO_PASS_TILES'): activations per
# batch dot 55.1 ms, gather 65.9 ms (two-pass pairs 48.0 ms); recompute from H200 session 3 (489 ms). Contiguous:
# guesses that compile for sm_90 without register spills (ptxas, offline).
ONE_PASS_TILES: dict[tuple[str, bool], Tile] = {
    ("recompute", True): Tile(32, 64, 4),
    ("recompute", False): Tile(256, 4, 4),
    ("gather", True): Tile(128, 32, 8),
    ("gather", False): Tile(256, 4, 4),
    ("dot", True): Tile(64, 64, 4),
    ("dot", False): Tile(128, 16, 4),
}


def one_pass_tile(method: str, x: Tensor) -> Tile:
    """The tile for x [B, C, T] from ONE_PASS_TILES, its channel block narrowed to x's channels."""
    tile = ONE_PASS_TILES[(method, x.stride(1) == 1)]
    return tile._replace(block_c=_channel_block(method, x.shape[1], tile))


def _channel_block(method: str, channels: int, tile: Tile) -> int:
    """The tile's channel block narrowed to channels; at least 16 for "dot" (tensor-core products need it)."""
    return pow2_between(channels, 16 if method == "dot" else 1, max(tile.block_c, 16 if method == "dot" else 1))


def _one_pass_triton(x, alpha, inv, valid, rate, up_taps, up_first, down_taps, down_left, method: str,
                     tile: Tile | None = None) -> Tensor:  # fmt: skip
    """y [B, C, T] (x's layout) from one kernel launch; tile: None for one_pass_tile's (the sweep passes others)."""
    from batchvoc.engines import one_pass_kernels as kernels  # imports triton: GPU path only

    rows, channels, length = x.shape
    valid, vs, has_span = span_launch_args(valid, x)
    y = torch.empty_like(x)
    tile = tile or one_pass_tile(method, x)
    block_c = _channel_block(method, channels, tile)
    common = dict(FIRST0=up_first[0], FIRST1=up_first[1], UP_TAPS=up_taps.shape[1], LEFT=down_left,
                  DOWN_TAPS=down_taps.numel(), HAS_SPAN=has_span, FAST_SIN=x.dtype != torch.float32 and x.is_cuda,
                  BLOCK_C=block_c, num_warps=tile.num_warps)  # fmt: skip
    args = (x, y, alpha, inv, up_taps, down_taps, valid, channels, length, rate, *x.stride(), *y.stride(), *vs)
    if method == "recompute":
        grid = (kernels.triton.cdiv(length, tile.block_t), kernels.triton.cdiv(channels, block_c), rows)
        launcher(kernels.one_pass_recompute, x)[grid](*args, BLOCK_T=tile.block_t, **common)
    elif method in ("gather", "dot"):
        step = (tile.block_t - down_taps.numel()) // 2 + 1
        if step < 1 or tile.block_t < 32:
            raise ValueError(f"{method} tile of {tile.block_t} rows: too short for {down_taps.numel()} taps")
        grid = (kernels.triton.cdiv(length, step), kernels.triton.cdiv(channels, block_c), rows)
        common["ALIGN"] = _alignment(x, y)
        if method == "gather":
            launcher(kernels.one_pass_gather, x)[grid](*args, ROWS=tile.block_t, STEP=step, **common)
        else:
            ieee = not x.is_cuda  # Triton's interpreter: its bf16 tl.dot is wrong
            launcher(kernels.one_pass_dot, x)[grid](*args, ROWS=tile.block_t, STEP=step, PARTS=PARTS[x.dtype],
                                                    IEEE=ieee, **common)  # fmt: skip
    else:
        raise ValueError(f"unknown one-pass method {method!r}; choose one of {', '.join(METHODS)}")
    return y


def _torch_forward(x, alpha, inv, valid, rate, up_taps, up_first, down_taps, down_left) -> Tensor:
    """The kernels' index arithmetic in plain torch (CPU, or a GPU without triton)."""
    rows, channels, length = x.shape
    span = Span.from_per_frame(valid)
    edge = span.edge_index(x, rate)[:, 0]  # [B|1, T]: each sample's nearest sample of its own utterance
    edge2 = span.edge_index(x, 2 * rate, 2 * length)[:, 0]  # the same at the upsampled rate
    m = torch.arange(2 * length, device=x.device)
    odd = m % 2
    first = torch.tensor(up_first, device=x.device)[odd]
    u = torch.zeros(rows, channels, 2 * length, dtype=torch.float32, device=x.device)
    for k in range(up_taps.shape[1]):
        pos = edge[:, torch.clamp(m // 2 + first + k, 0, length - 1)]
        u += up_taps[odd, k] * torch.gather(x.float(), -1, pos.unsqueeze(1).expand(rows, channels, -1))
    a = (u + inv.view(1, -1, 1) * torch.sin(u * alpha.view(1, -1, 1)) ** 2).to(x.dtype).float()
    j = torch.arange(length, device=x.device)
    y = torch.zeros(rows, channels, length, dtype=torch.float32, device=x.device)
    for k in range(down_taps.numel()):
        pos = edge2[:, torch.clamp(2 * j - down_left + k, 0, 2 * length - 1)]
        y += down_taps[k] * torch.gather(a, -1, pos.unsqueeze(1).expand(rows, channels, -1))
    return torch.empty_like(x).copy_(y)  # x's layout, as the kernels (and the fake) give


def _two_pass_kernels() -> list:
    from batchvoc.engines import antialias_kernels as kernels

    return [kernels.up_snake, kernels.down, kernels.up_pairs, kernels.down_inside]


def _one_pass_kernels() -> list:
    from batchvoc.engines import one_pass_kernels as kernels

    return [kernels.one_pass_recompute, kernels.one_pass_gather, kernels.one_pass_dot]


@kernel_op("antialiased_snake", kernels=_two_pass_kernels)
def antialiased_snake(x: Tensor, alpha: Tensor, inv: Tensor, valid: Tensor, rate: int, up_taps: Tensor,
                      up_first: list[int], down_taps: Tensor, down_left: int) -> Tensor:  # fmt: skip
    """x [B, C, T] -> [B, C, T]: Activation1d(Snake) with up/down ratio 2 (module doc). valid: [B, 2, T // rate]
    per-frame utterance bounds, or an empty tensor for whole utterances."""
    forward = _triton_forward if use_triton(x) else _torch_forward
    return forward(x, alpha, inv, valid, rate, up_taps, up_first, down_taps, down_left)


@kernel_op("antialiased_snake_one_pass", kernels=_one_pass_kernels)
def antialiased_snake_one_pass(
    x: Tensor, alpha: Tensor, inv: Tensor, valid: Tensor, rate: int, up_taps: Tensor, up_first: list[int],
    down_taps: Tensor, down_left: int, method: str,
) -> Tensor:  # fmt: skip
    """`antialiased_snake` as one kernel launch (module doc): method "recompute", "gather" or "dot"."""
    if method not in METHODS:
        raise ValueError(f"unknown one-pass method {method!r}; choose one of {', '.join(METHODS)}")
    if use_triton(x):
        return _one_pass_triton(x, alpha, inv, valid, rate, up_taps, up_first, down_taps, down_left, method)
    return _torch_forward(x, alpha, inv, valid, rate, up_taps, up_first, down_taps, down_left)


class FusedActivation1d(nn.Module):
    """An Activation1d(Snake | SnakeBeta) with ratios 2/2 computed by `antialiased_snake` (method "two_pass") or
    `antialiased_snake_one_pass` (method "recompute" | "gather" | "dot"); same interface."""

    def __init__(self, base: Activation1d, method: str = "two_pass"):
        super().__init__()
        if method not in ("two_pass", *METHODS):
            raise ValueError(f"unknown method {method!r}; choose one of two_pass, {', '.join(METHODS)}")
        if not isinstance(base.act, Snake | SnakeBeta) or (base.up_ratio, base.down_ratio) != (2, 2):
            raise ValueError("FusedActivation1d needs Snake/SnakeBeta with up and down ratio 2")
        low = base.downsample.lowpass
        if not low.padding or low.padding_mode != "replicate" or low.stride != 2:
            raise ValueError("FusedActivation1d needs a replicate-padded low-pass of stride 2")
        self.act = copy.deepcopy(base.act)
        self.up_first, up_taps = _up_phases(base.upsample)
        self._taps = {"up_taps": up_taps, "down_taps": low.filter.detach().double().flatten().tolist()}
        for name, values in self._taps.items():
            self.register_buffer(name, torch.tensor(values, dtype=torch.float32), persistent=False)
        self.down_left = low.pad_left
        self.method = method
        self.channels_last = False  # engines/layout.channels_last_2d sets it: x then comes as channels-last rows
        self._needs = base.needs
        (antialiased_snake if method == "two_pass" else antialiased_snake_one_pass).define()

    def needs(self, lo: int, hi: int) -> tuple[int, int]:
        return self._needs(lo, hi)

    def _apply(self, fn, recurse=True):
        """Moving the model moves the filter taps; casting it (.half()) leaves them float32, unrounded."""
        super()._apply(fn, recurse)
        for name, values in self._taps.items():
            self._buffers[name] = torch.tensor(values, dtype=torch.float32, device=self._buffers[name].device)
        return self

    def forward(self, x: Tensor, span: Span | None = None, rate: int = 1) -> Tensor:
        x = channels_last_rows(x) if self.channels_last else x
        alpha, inv = self.act.params_fp32()
        valid = (span or Span(None)).per_frame(x.shape[-1] // rate, x.device)
        args = (x, alpha, inv, valid, rate, self.up_taps, self.up_first, self.down_taps, self.down_left)
        if self.method == "two_pass":
            return torch.ops.batchvoc.antialiased_snake(*args)
        return torch.ops.batchvoc.antialiased_snake_one_pass(*args, self.method)
