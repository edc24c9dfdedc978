"""HiFi-GAN's resblocks as fused Triton convolutions, for the engines' copy of a model on a CUDA GPU.

Every step of a ResBlock1 / ResBlock2 (leaky ReLU, dilated conv, bias, residual add, the span's zeroing) is one
kernel, `lrelu_conv`:

    out[b, o, t] = inside(t) * act_out(bias[o] + sum_{k, i} w[k, i, o] * act_in(x[b, i, t + k*d - p])  (+ res[b, o, t]))

with x zero past [0, T), act_in / act_out the leaky ReLU or nothing, and inside(t) = 1 where sample t lies in its
own utterance (Span.zero), else 0: per tap, a matrix product of channels-last input rows with the tap's weights,
fp32 accumulation, an activated input rounded to x's dtype before the product as the reference rounds it. In a
ResBlock1 pair the first conv stores its output activated and the second takes it as it is: the activation then
runs once per sample instead of once per tap (at 64 channels and k=11 it cost 0.19 of the conv's 0.71 ms), and
the second conv's rows go from shared memory straight into the product. Each group's last conv but the block's last
stores only its output's leaky ReLU: the next group's first conv takes those rows as they are, and its last conv
reads them as its residual, inverted (a / slope where negative: `residual_activated`, exact but for the rounding of
the stored rows, within 2^-11 in fp16), so a group hands on one tensor where it stored two (the output and its
activation; gsv_v4 fp16, H200, session 13: storing the activation beside the output took 3,759x -> 3,880x). In a
model, a stage's blocks share their input's activation the same way (`FusedResBlock.stage_mean`, called by
hifigan.stage_mean): made once with the input's zeroing, taken as it is by every block's first conv (H200: 3,809x ->
3,936x) and, inverted, as its first residual; each block's last conv adds the outputs of the blocks before it, and
the stage's last one divides by their number and applies the leaky ReLU the generator's next layer wants (H200,
gsv_v4 fp16, both with the channels-last views of upsample_phases.rows_2d: 4,215x -> 4,311x, session 25). A
FusedResBlock zeroes its
input outside the utterances once and every kernel zeroes its output there, which is what the reference's Span.zero
before each conv achieves: the values it leaves in gaps are never read by any conv, and only gaps differ (zero
here).

Why: between cuDNN's convolutions, Inductor (gsv_v4 fp16, H100) spent 36.5% of GPU time in elementwise kernels,
moving each resblock step's activation through memory about ten times; fused, it moves five times (read x, write
h; read h and the residual, write x). cuDNN is also slow at 16 channels (0.81 ms for a k=7 layer that this kernel
runs in 0.39 ms, H100). FUSED_MAX_CHANNELS (the default of the engine option `fused_max_channels`) bounds the
layers fused: at 128 channels cuDNN's convolutions plus Inductor's elementwise kernels stay faster
(benchmarks/conv_tiles.py). Whole gsv_v4 fp16 on an H100 (BENCHMARKS.md, session 5): 3,530x real time fused up
to 64 channels, 3,461x up to 32.

Tile sizes come from `tiles()` unless the engine option `tile_table` names others per layer (`TileTable`).

`lrelu_conv` is a torch operator made with torch.library.triton_op (engines/ops.py): torch.compile and AOTInductor
compile its kernel into their own code. A block-copy launch records its host-side descriptor's block shape with
it (`triton_runtime.launch_with_descriptors`: torch's wrap_triton records none), so the compiled code makes the
descriptor per call as an eager call does; with DEVICE_DESCRIPTORS a traced launch runs `lrelu_conv_tma_device`
instead, whose programs make the descriptor themselves (`block_copy_descriptor`). On a CPU the op
runs the same arithmetic in plain torch. With TRITON_INTERPRET=1 the kernel runs on CPU tensors through Triton's
interpreter (slow; tests).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from batchvoc.backends import TILE_KEYS, parse_tile_table
from batchvoc.engines.ops import compiled_descriptors_take_wide_rows, kernel_op
from batchvoc.engines.superrow import (
    superrow_conv,
    superrow_fit,
    superrow_rows,
    superrow_weights,
)
from batchvoc.engines.triton_runtime import (
    channels_last_empty,
    channels_last_rows,
    launch_with_descriptors,
    launcher,
    pow2_between,
    span_launch_args,
    tile_config,
    traced,
    use_triton,
)
from batchvoc.models.hifigan import LRELU_SLOPE, ResBlock1, ResBlock2, residual_groups
from batchvoc.models.span import Span

FUSED_MAX_CHANNELS = 64  # H100 (BENCHMARKS.md, session 5): at 128 channels cuDNN plus Inductor is faster
# Traced launches (torch.compile, AOTInductor) of block-copy tiles: descriptors made on the device, else on the host
# as in eager calls. Off: on the H200 (session 13, benchmarks/traced_block_copies.py, eager launches) they took
# 1.07x the host descriptors' time, a few tiles of one layer came out wrong (64 channels, k=11, input activated, 3
# stages: 9e-2, not with 1, 2 or 4), and an AOTInductor package of gsv_v4 with them stopped on an illegal instruction
DEVICE_DESCRIPTORS = False
# The widest block row a traced launch's host descriptor takes: the compiled code makes it with torch's
# initTMADescriptor (torch/_inductor/codegen/cuda/device_op_overrides.py), which asks the driver for the block's
# whole row as one box under a swizzle of at most 128 bytes, and cuTensorMapEncodeTiled refuses a wider one ("CUDA
# driver error: invalid argument": gsv_v4's 128-channel upsampler in fp16); Triton's own launcher splits such rows
# into 128-byte boxes for eager calls. Traced ones: torch's helper is made to split them the same way
# (ops.wide_rows_in_compiled_descriptors); where it cannot be, the kernel splits them itself (`block_copy_box`).
# Until session 30 such traced rows took pointer loads (~0.45 ms per gsv_v4 forward, most of aoti's gap to inductor
# then); until session 33 the kernel's own split (one product per box: ~0.05 ms per forward on the H200).
TRACED_MAX_ROW_BYTES = 128
# Narrower inputs never take block copies: a 16-channel fp16 row (32 bytes) is too short for them (H100 sweeps,
# `tiles`); their STAGES pipelines the pointer loads' tap loop instead
BLOCK_COPY_MIN_CHANNELS = 32


def tiles(c_in: int, c_out: int, ksize: int, activate_input: bool = True) -> dict[str, int]:
    """Tile sizes, launch shape and kernel for one layer: all input channels in one product per tap (BLOCK_C), up to
    64 output channels per tile; STAGES pipelines the tap loop that deep, with block copies from
    BLOCK_COPY_MIN_CHANNELS input channels up (`block_copy_descriptor`), else with pointer loads.

    From H100 sweeps of gsv_v4's layers (benchmarks/conv_tiles.py, fp16, 16 x 10 s): block copies win from 64
    channels up, and at 32 channels for wide kernels whose input comes activated; at 16 channels a row (32 bytes) is
    too short for them, and 256 time steps per tile pay where the input needs no activation."""
    config = dict(BLOCK_M=128, BLOCK_N=pow2_between(c_out, 16, 64), BLOCK_C=pow2_between(c_in, 16, 256),
                  num_warps=4, num_stages=1)  # fmt: skip
    if c_in >= 64:
        config["STAGES"] = 3
    elif c_in >= 32:
        if not activate_input and ksize > 3:
            config.update(BLOCK_M=256, STAGES=3)
    elif not activate_input or ksize == 7:
        config["BLOCK_M"] = 256
        if not activate_input and ksize > 3:  # H200 session 13: pipelined 0.284 / 0.372 ms against 0.310 / 0.435
            config["STAGES"] = 3
    return config


def tile_list(config: dict[str, int]) -> list[int]:
    """A tile config as the op's `tile` argument: TILE_KEYS' values in order, STAGES 0 for the pointer-load kernel."""
    return [int(config.get(k, 0)) for k in TILE_KEYS]


class TileTable:
    """Tile sizes per fused layer, the engine option `tile_table`: {"C_IN,KSIZE,ACT": {BLOCK_M: .., ...}} (ACT 1
    when the layer activates its input, 0 otherwise; benchmarks/conv_tiles.py and benchmarks/tile_table.py write this
    form), or the path of a JSON file holding it. Layers not listed take `tiles()`. Raises ValueError for a malformed
    entry."""

    def __init__(self, table: dict | str | None = None):
        self.table = parse_tile_table(table)

    def __call__(self, c_in: int, c_out: int, ksize: int, activate_input: bool = True) -> dict[str, int]:
        return dict(self.table.get((c_in, ksize, int(activate_input))) or tiles(c_in, c_out, ksize, activate_input))

    def __bool__(self) -> bool:
        return bool(self.table)


def _triton_forward(x, weight, bias, residual, valid, rate, dilation, padding, slope, activate_input=True,
                    activate_output=False, config=None, descriptor=None, upper=None, *,
                    residual_activated=False, extra=None, scale=1.0, out_slope=None, box=None) -> Tensor:  # fmt: skip
    """out [B, C_out, T] from one launch; with `upper` ([B, C_out / 2, T], channels-last) out is the output's lower
    half and `upper` gets the rest;
    descriptor: None for `block_copy_descriptor`'s choice, else "host", "device" or "pointer" (tests and benchmarks
    force one); box: the channels of one block copy (None: `block_copy_box`'s; tests force a split row).
    residual_activated, extra, scale, out_slope: `lrelu_conv`'s."""
    from batchvoc.engines import conv_kernels  # imports triton: GPU path only

    rows, c_in, length = x.shape
    ksize, _, c_out = weight.shape
    out = channels_last_empty(rows, c_out if upper is None else c_out // 2, length, x)
    has_res = residual is not None
    res = residual if has_res else out  # never read when absent; a real pointer for the launcher
    if extra is not None and extra.stride() != out.stride():
        extra = channels_last_empty(*extra.shape, x).copy_(extra)  # read with out's strides
    valid, vs, has_span = span_launch_args(valid, x)
    config = dict(config or tiles(c_in, c_out, ksize, activate_input))
    how = descriptor or block_copy_descriptor(x, config)
    if how == "pointer":
        config = dict(config if descriptor else pointer_tile(config, activate_input))
        config.setdefault("STAGES", 0)
    grid = (conv_kernels.triton.cdiv(length, config["BLOCK_M"]), conv_kernels.triton.cdiv(c_out, config["BLOCK_N"]),
            rows)  # fmt: skip
    params = (weight, bias, res, out if extra is None else extra, out, out if upper is None else upper, valid)
    scalars = (rate, dilation, padding, slope, slope if out_slope is None else out_slope, scale)
    strides = (*res.stride(), *out.stride(), *vs)
    flags = dict(C_IN=c_in, C_OUT=c_out, KSIZE=ksize, HAS_RES=has_res, RES_ACTIVATED=has_res and residual_activated,
                 HAS_EXTRA=extra is not None, HAS_SPAN=has_span,
                 ACTIVATE_INPUT=activate_input, ACTIVATE_OUTPUT=activate_output, SPLIT_OUT=upper is not None,
                 DOT_PRECISION="ieee" if x.dtype == torch.float32 else "tf32")  # fmt: skip
    if how == "host":  # x's rows [B, T, C] in blocks [1, BLOCK_M, BOX_C]
        box = box or block_copy_box(x, config)
        blocks = {"x_desc": [1, config["BLOCK_M"], box]}
        launch_with_descriptors(conv_kernels.lrelu_conv_tma, grid, blocks, x.transpose(1, 2), *params, length,
                                *scalars, *strides, **flags, **config, BOX_C=box)  # fmt: skip
    elif how == "device":
        launcher(conv_kernels.lrelu_conv_tma_device, x)[grid](x, *params, rows, length, *scalars, x.stride(0),
                                                              x.stride(2), *strides, **flags, **config,
                                                              BOX_C=box or config["BLOCK_C"])  # fmt: skip
    else:
        launcher(conv_kernels.lrelu_conv, x)[grid](x, *params, length, *scalars, *x.stride(), *strides, **flags,
                                                   **config)  # fmt: skip
    return out


def block_copy_descriptor(x: Tensor, config: dict[str, int]) -> str:
    """How a launch on x with this tile gets its block copies: "host" (a descriptor made on the host: eager calls,
    and traced ones, whose compiled code makes it), "device" (made by the kernel: a traced launch with
    DEVICE_DESCRIPTORS), or "pointer": pointer loads (no STAGES in the tile, fewer than BLOCK_COPY_MIN_CHANNELS
    input channels, or x unaligned)."""
    if "STAGES" not in config or x.shape[1] < BLOCK_COPY_MIN_CHANNELS or not fits_block_copies(x):
        return "pointer"
    if not traced(x):
        return "host"
    return "device" if DEVICE_DESCRIPTORS else "host"


def block_copy_box(x: Tensor, config: dict[str, int]) -> int:
    """The input channels one host-made block copy of x's rows takes: the tile's whole row (BLOCK_C) in an eager
    call, whose launcher splits a wide row into 128-byte boxes itself, and in a traced one where torch's compiled
    descriptors are made to split it the same way (ops.wide_rows_in_compiled_descriptors); otherwise at most
    TRACED_MAX_ROW_BYTES, where the kernel splits the row into that many block copies per tap, each feeding its own
    product (gsv_v4's 128-channel upsampler in fp16: two of 64 channels)."""
    if not traced(x) or compiled_descriptors_take_wide_rows():
        return config["BLOCK_C"]
    return min(config["BLOCK_C"], TRACED_MAX_ROW_BYTES // x.element_size())


def pointer_tile(config: dict[str, int], activate_input: bool) -> dict[str, int]:
    """A tile for the pointer-load kernel. A block-copy tile (STAGES) keeps its tap loop pipelined STAGES deep where
    the rows go straight into the product; rows activated on the way go back to unrolled taps over 64 time steps
    (H200, benchmarks/traced_block_copies.py: pipelined they took up to 1.4x, at 64 time steps 0.77-1.0x the time of
    128). Together 1.05x the time of the block copies, against 1.19x for the same tiles unrolled."""
    if "STAGES" not in config or not activate_input:
        return config
    return {**{k: v for k, v in config.items() if k != "STAGES"}, "BLOCK_M": 64}


def fits_block_copies(x: Tensor) -> bool:
    """Whether channels-last x [B, C, T] meets a block copy's alignment: unit channel stride, 16-byte aligned start
    and row strides (e.g. not 20 fp16 channels); otherwise the pointer-load kernel runs. A traced x counts from its
    storage's start (allocations are aligned)."""
    itemsize = x.element_size()
    start = x.storage_offset() * itemsize if traced(x) else x.data_ptr()
    return (x.stride(1) == 1 and start % 16 == 0
            and all(x.stride(d) * itemsize % 16 == 0 for d in (0, 2)))  # fmt: skip


def _torch_forward(x, weight, bias, residual, valid, rate, dilation, padding, slope, activate_input=True,
                   activate_output=False, config=None, upper=None, *, residual_activated=False,
                   extra=None, scale=1.0, out_slope=None) -> Tensor:  # fmt: skip
    """The kernel's arithmetic in plain torch: CPU, or a GPU without triton."""
    y = F.conv1d(F.leaky_relu(x, slope) if activate_input else x, weight.permute(2, 1, 0), bias, 1, padding, dilation)
    if residual is not None:
        y = y + (inverse_leaky_relu(residual, slope) if residual_activated else residual)
    if extra is not None:
        y = y + extra
    if scale != 1.0:
        y = y * scale
    if activate_output:
        y = F.leaky_relu(y, slope if out_slope is None else out_slope)
    y = Span.from_per_frame(valid).zero(y, rate)
    if upper is not None:
        upper.copy_(y[:, upper.shape[1] :])
        y = y[:, : upper.shape[1]]
    return channels_last_empty(x.shape[0], y.shape[1], y.shape[2], x).copy_(y)


def inverse_leaky_relu(a: Tensor, slope: float) -> Tensor:
    """x from a = leaky_relu(x, slope) (slope > 0), computed in fp32 and rounded to a's dtype: a where a > 0, else
    a / slope. Exact but for the rounding of a itself (fp16: within 2^-11 of x, relative)."""
    af = a.float()
    return torch.where(af > 0, af, af / slope).to(a.dtype)


def _conv_kernels() -> list:
    from batchvoc.engines import conv_kernels

    return [conv_kernels.lrelu_conv, conv_kernels.lrelu_conv_tma, conv_kernels.lrelu_conv_tma_device]


@kernel_op("lrelu_conv", kernels=_conv_kernels)
def lrelu_conv(x: Tensor, weight: Tensor, bias: Tensor, residual: Tensor | None, valid: Tensor, rate: int,
               dilation: int, padding: int, slope: float, activate_input: bool = True,
               activate_output: bool = False, tile: list[int] | None = None, residual_activated: bool = False,
               extra: Tensor | None = None, scale: float = 1.0, out_slope: float | None = None) -> Tensor:  # fmt: skip
    """x [B, C_in, T] -> [B, C_out, T] (channels-last strides): zeroed outside the utterances, conv(leaky_relu(x))
    + bias (+ residual) (module doc); activate_input=False convolves x as it is, activate_output=True applies the
    leaky ReLU to the result (for a consumer that would apply it first), at out_slope (None: slope).
    weight [k, C_in, C_out]; valid [B, 2, T // rate] per-frame utterance bounds, or empty for whole utterances;
    tile: the kernel's tile sizes as `tile_list` gives them (None or empty: `tiles()`).
    residual_activated: `residual` holds leaky_relu(residual, slope), inverted as it is read
    (`inverse_leaky_relu`), so a resblock group can hand on only its activated output. extra [B, C_out, T]: one more
    addend after the residual, and scale multiplies the sum before the output's activation (a stage's mean of
    block outputs: FusedResBlock.stage_mean)."""
    forward = _triton_forward if use_triton(x) else _torch_forward
    return forward(x, weight, bias, residual, valid, rate, dilation, padding, slope, activate_input, activate_output,
                   tile_config(tile or [], TILE_KEYS), residual_activated=residual_activated, extra=extra,
                   scale=scale, out_slope=out_slope)  # fmt: skip


@kernel_op("lrelu_conv_halves", kernels=_conv_kernels)
def lrelu_conv_halves(x: Tensor, weight: Tensor, bias: Tensor, valid: Tensor, rate: int, dilation: int, padding: int,
                      slope: float, activate_input: bool = True, activate_output: bool = False,
                      tile: list[int] | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """`lrelu_conv` (no residual) whose output channels' two halves are stored as two compact tensors, in one launch:
    (out[:, :C_out / 2], out[:, C_out / 2:]), each [B, C_out / 2, T] with channels-last strides. For two convs of one
    input run side by side (weights concatenated along C_out: engines/first_convs.py), whose consumers then read
    rows of their own conv's channels only."""
    rows, _, length = x.shape
    if weight.shape[2] % 2:
        raise ValueError(f"lrelu_conv_halves needs an even number of output channels, got {weight.shape[2]}")
    upper = channels_last_empty(rows, weight.shape[2] // 2, length, x)
    forward = _triton_forward if use_triton(x) else _torch_forward
    lower = forward(x, weight, bias, None, valid, rate, dilation, padding, slope, activate_input, activate_output,
                    tile_config(tile or [], TILE_KEYS), upper=upper)  # fmt: skip
    return lower, upper


class PackedConv(nn.Module):
    """A same-padded stride-1 nn.Conv1d's weight as [k, C_in, C_out] (the kernel's GEMM order), bias, geometry;
    with superrows > 0 and a conv that fits (superrow.superrow_fit) also its super-row blocks [2M + 1, W, W]
    (`blocks`) and `samples` per super-row (0: none)."""

    def __init__(self, conv: nn.Conv1d, superrows: int = 0):
        super().__init__()
        if conv.stride[0] != 1 or conv.groups != 1 or isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError("PackedConv needs a stride-1, ungrouped, zero-padded Conv1d")
        self.dilation, self.padding = conv.dilation[0], conv.padding[0]
        self.weight = nn.Parameter(conv.weight.detach().permute(2, 1, 0).contiguous(), requires_grad=False)
        bias = conv.bias.detach() if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
        self.bias = nn.Parameter(bias.clone(), requires_grad=False)
        self.samples = superrow_fit(self.weight, self.dilation, self.padding, superrows)
        if self.samples:
            blocks = superrow_weights(self.weight.detach(), self.dilation, self.padding, self.samples)
            self.blocks = nn.Parameter(blocks, requires_grad=False)


class FusedResBlock(nn.Module):
    """A ResBlock1 / ResBlock2 computed with `lrelu_conv`, one kernel per conv; same interface, and the same
    function inside each utterance (zero outside it). Each group but the last hands on only its output's leaky ReLU
    (`run`). In a model, a stage of them (`stage_mean`) takes its input's leaky ReLU made once for all its blocks.
    superrows > 0 (the engine option; default 0, off): convs that superrow.superrow_fit admits run `superrow_conv`
    instead where S divides the frame rate and T (engines/superrow.py)."""

    def __init__(self, block: ResBlock1 | ResBlock2, tile_table: TileTable | None = None, superrows: int = 0):
        super().__init__()
        groups = residual_groups(block)
        self.groups = nn.ModuleList(nn.ModuleList(PackedConv(c, superrows) for c in group) for group in groups)
        self._reach = block.reach()
        self.channels, self.kernel_size = block.channels, block.kernel_size
        # (group, conv, whether it activates its input rows) -> the op's tile argument
        self.tiles = {(j, i, act): _tile(conv, act, tile_table) for j, group in enumerate(self.groups)
                      for i, conv in enumerate(group) for act in (True, False)}  # fmt: skip
        self.channels_last = False  # engines/layout.channels_last_2d sets it: x then comes as channels-last rows
        self.shared_first: nn.Module | None = None  # engines/first_convs.py's, where this block leads its stage
        lrelu_conv.define()
        if any(conv.samples for group in self.groups for conv in group):
            superrow_conv.define()

    def reach(self) -> int:
        return self._reach

    def forward(self, x: Tensor, span: Span, rate: int) -> Tensor:
        x, valid = self._stage_input(x, span, rate)
        return self.run(x, None, valid, rate)

    def _stage_input(self, x: Tensor, span: Span, rate: int) -> tuple[Tensor, Tensor]:
        """(x zeroed outside the utterances, per-frame bounds): the kernels keep x so, each zeroing its output."""
        x = channels_last_rows(x) if self.channels_last else x
        return span.zero(x, rate), span.per_frame(x.shape[-1] // rate, x.device)

    @staticmethod
    def stage_mean(blocks: nn.ModuleList, x: Tensor | None, span: Span, rate: int, activated: Tensor | None = None,
                   out_slope: float | None = None) -> Tensor:  # fmt: skip
        """The mean of a stage's FusedResBlocks on x [B, C, T] (hifigan.stage_mean), or with out_slope the mean's
        leaky ReLU at that slope, zeroed outside the utterances (what the generator hands the next layer). Every
        block reads x through its leaky ReLU only (`run`), made once here with its zeroing (one pass), or by the
        stage's upsampler (`activated`, fused_upsample.FusedUpsample.stage_input; x may then be None). Each block's
        last conv adds the blocks before it (`extra`) and the last one divides by their number and activates: no
        separate pass sums them (H200, gsv_v4 fp16: that pass took 0.22 ms per 16- or 32-channel stage).

        The leaky ReLU is taken of x's own inputs (zeroed after it: the same values), not of zeroed x: Inductor
        copies a not-yet-stored input of our operators into a buffer per consumer (its stride constraint) unless it
        stores it first, which it does for a node of several reads (ops.compiled_as tells it so)
        (tests/engines/test_fused_resblock.py counts the buffers on a CPU)."""
        if activated is None:
            rows = channels_last_rows(x) if blocks[0].channels_last else x
            activated = span.zero(F.leaky_relu(rows, LRELU_SLOPE), rate)
        valid = span.per_frame(activated.shape[-1] // rate, activated.device)
        shared = blocks[0].shared_first
        firsts = shared(activated, valid, rate) if shared is not None else {}
        total = None
        for i, block in enumerate(blocks):
            scale, slope = (1.0 / len(blocks), out_slope) if i == len(blocks) - 1 else (1.0, None)
            total = block.run(None, activated, valid, rate, firsts.get(i), total, scale, slope)
        return total

    def run(self, x: Tensor | None, activated: Tensor | None, valid: Tensor, rate: int, first: Tensor | None = None,
            extra: Tensor | None = None, scale: float = 1.0, out_slope: float | None = None) -> Tensor:  # fmt: skip
        """The block's output ((output + extra) * scale, leaky ReLU'd at out_slope unless None) on its input, given as
        x [B, C, T] zeroed outside the utterances (the first conv activates its rows) or as `activated`, x's leaky
        ReLU made by the caller (x then unused). valid: Span.per_frame's bounds. first: the first conv's output
        (activated), made by the stage's SharedFirstConvs, or None.

        Every group but the last hands on only its output's leaky ReLU: the next group's first conv takes those rows
        as they are and its last conv reads them as its residual, inverted (`residual_activated`): one store per
        group, where the output and its activation were two (or the next first conv activated each tap's rows)."""
        res, res_activated = (x, False) if activated is None else (activated, True)
        for j, group in enumerate(self.groups):
            h = None
            for i, conv in enumerate(group):
                if i == 0 and j == 0 and first is not None:
                    h = first
                    continue
                inner, last_group = i < len(group) - 1, j == len(self.groups) - 1
                if i == 0:
                    h, act_in = (x, True) if activated is None else (activated, False)
                else:
                    act_in = False
                if inner:  # an inner conv hands its consumer the activated output
                    h = self._conv(conv, h, act_in, (j, i), valid, rate, activate_output=True)
                elif not last_group:
                    h = self._conv(conv, h, act_in, (j, i), valid, rate, res, res_activated, activate_output=True)
                    activated, res, res_activated = h, h, True
                else:
                    h = self._conv(conv, h, act_in, (j, i), valid, rate, res, res_activated,
                                   activate_output=out_slope is not None, extra=extra, scale=scale,
                                   out_slope=out_slope)  # fmt: skip
        return h

    def _conv(self, conv: PackedConv, h: Tensor, act_in: bool, where: tuple[int, int], valid: Tensor, rate: int,
              residual: Tensor | None = None, residual_activated: bool = False, activate_output: bool = False,
              extra: Tensor | None = None, scale: float = 1.0, out_slope: float | None = None) -> Tensor:  # fmt: skip
        """One conv of the block as `lrelu_conv` (or `superrow_conv`, whose kernel takes neither an activated
        residual nor extra, scale and out_slope: plain torch does those around it)."""
        if not (conv.samples and rate % conv.samples == 0 and h.shape[-1] % conv.samples == 0):
            return torch.ops.batchvoc.lrelu_conv(h, conv.weight, conv.bias, residual, valid, rate, conv.dilation,
                                                 conv.padding, LRELU_SLOPE, activate_input=act_in,
                                                 activate_output=activate_output, tile=self.tiles[(*where, act_in)],
                                                 residual_activated=residual_activated, extra=extra, scale=scale,
                                                 out_slope=out_slope)  # fmt: skip
        if residual is not None and residual_activated:
            residual = inverse_leaky_relu(residual, LRELU_SLOPE)
        plain = extra is None and scale == 1.0 and out_slope in (None, LRELU_SLOPE)
        y = torch.ops.batchvoc.superrow_conv(superrow_rows(h), conv.blocks, conv.bias, residual, valid, rate,
                                             conv.samples, LRELU_SLOPE, activate_input=act_in,
                                             activate_output=activate_output and plain, tile=[])  # fmt: skip
        if plain:
            return y
        y = (y if extra is None else y + extra) * scale
        y = F.leaky_relu(y, out_slope) if activate_output else y
        return Span.from_per_frame(valid).zero(y, rate)


def _tile(conv: PackedConv, activate_input: bool, table: TileTable | None) -> list[int]:
    """The op's `tile` argument for one conv: the table's entry, or [] (the op picks `tiles()` at run time)."""
    if not table:
        return []
    ksize, c_in, c_out = conv.weight.shape
    return tile_list(table(c_in, c_out, ksize, activate_input))
