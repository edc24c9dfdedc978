"""Super-rows: a fused resblock conv of few channels as a block-Toeplitz product of 128-wide rows (opt-in, the
engine option `superrows`).

At 16 / 32 channels `lrelu_conv`'s per-tap products [BLOCK_M, C] x [C, C] are tiny (N = C) and leave the tensor
cores mostly idle. Channels-last x [B, C, T] (memory [B, T, C]) seen as [B, T / S, W], S = SUPERROW_WIDTH // C
samples per super-row and W = S * C features, is a free view; a same-padded stride-1 conv (k taps, dilation d,
padding p = d (k - 1) / 2) is then, per output super-row q,

    Y[q] = sum_{m = -M..M} X[q + m] @ B[m + M],    M = ceil(p / S)   (`superrow_reach`)
    B[m + M][(s_in, c_in), (s_out, c_out)] = w[j, c_in, c_out] where s_in + m S - s_out == j d - p, else 0

(`superrow_weights`; X zero outside [0, T / S)). (2M + 1) S / k times the FLOPs, but every product is
[BLOCK_M, W] x [W, BLOCK_N], and each super-row block is loaded once per m instead of once per tap. Measured on an
H200 (benchmarks/superrow_tiles.py, BENCHMARKS.md session 16) it is slower than lrelu_conv for every gsv_v4 layer
but k = 11, d = 1 (1.17x at 16 channels, 1.07x at 32), so it stays off by default. A likely cause, not profiled: each
tile reads (2M + 1) [128, BLOCK_N] weight blocks for [BLOCK_M, 128] of input (weights kept on chip across tiles
would remove that).

Everything else is `lrelu_conv`'s (engines/fused_resblock.py): the leaky ReLU of the input as loaded, rounded to x's
dtype, bias, residual, the output's leaky ReLU, the span's zeroing per sample, fp32 accumulation. The op
(torch.library.triton_op, engines/ops.py) launches `superrow_kernels.superrow_conv` on a GPU; on a CPU it runs the
same block products in plain torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from batchvoc.engines.ops import kernel_op
from batchvoc.engines.triton_runtime import (
    channels_last_empty,
    launcher,
    span_launch_args,
    tile_config,
    use_triton,
)
from batchvoc.models.span import Span

SUPERROW_WIDTH = 128  # features per super-row: the tensor cores' K and N of one product
SUPERROW_TILE_KEYS = ("BLOCK_M", "BLOCK_N", "num_warps", "num_stages", "STAGES")  # the ops' `tile` list, in order
SUPERROW_CHANNELS = (16, 32, 64)  # the resblock widths that may run over super-rows (8, 4, 2 samples each)


def superrow_samples(channels: int) -> int:
    """Samples per super-row at this many channels (0 where a super-row would hold less than one sample)."""
    return SUPERROW_WIDTH // channels


def superrow_reach(ksize: int, dilation: int, samples: int) -> int:
    """M: the super-rows each side of an output super-row that a same-padded conv of ksize taps and this dilation
    reads, at `samples` samples per super-row (ceil(padding / samples))."""
    padding = dilation * (ksize - 1) // 2
    return -(-padding // samples)


def superrow_weights(weight: Tensor, dilation: int, padding: int, samples: int) -> Tensor:
    """weight [k, C_in, C_out] (fused_resblock.PackedConv's order) -> blocks [2M + 1, S C_in, S C_out] (same dtype and
    device; module doc), S = samples, M = superrow_reach. Raises ValueError where the conv is not same-padded."""
    ksize, c_in, c_out = weight.shape
    if 2 * padding != dilation * (ksize - 1):
        raise ValueError(f"super-rows need a same-padded conv: padding {padding} is not {dilation} * ({ksize} - 1) / 2")
    reach = superrow_reach(ksize, dilation, samples)
    blocks = weight.new_zeros(2 * reach + 1, samples, c_in, samples, c_out)
    for tap in range(ksize):
        for s_out in range(samples):
            step = s_out + tap * dilation - padding  # input sample read, relative to the output super-row's start
            blocks[step // samples + reach, step % samples, :, s_out, :] = weight[tap]
    return blocks.reshape(2 * reach + 1, samples * c_in, samples * c_out)


def superrow_fit(weight: Tensor, dilation: int, padding: int, max_reach: int) -> int:
    """Samples per super-row for a conv of weight [k, C, C] (fused_resblock.PackedConv's), or 0 where it stays
    lrelu_conv's: C not in SUPERROW_CHANNELS, input and output widths differing, not same-padded, or reaching more
    than max_reach super-rows each side (the engine option `superrows`; 0 turns super-rows off)."""
    ksize, c_in, c_out = weight.shape
    if max_reach <= 0 or c_in != c_out or c_in not in SUPERROW_CHANNELS or 2 * padding != dilation * (ksize - 1):
        return 0
    samples = superrow_samples(c_in)
    return samples if superrow_reach(ksize, dilation, samples) <= max_reach else 0


def _compact_rows(x: Tensor) -> bool:
    """x [B, C, T] has compact channels-last rows (channel stride 1, time stride C)."""
    return x.stride(1) == 1 and (x.shape[2] <= 1 or x.stride(2) == x.shape[1])


def superrow_rows(x: Tensor) -> Tensor:
    """x [B, C, T] as compact channels-last rows (channel stride 1, time stride C), what the ops take: x itself
    where it has them, else a copy."""
    return x if _compact_rows(x) else x.transpose(1, 2).contiguous().transpose(1, 2)


def superrow_product(rows: Tensor, blocks: Tensor) -> Tensor:
    """rows [B, R, W_in] (super-rows, zero outside [0, R)) -> [B, R, W_out]: sum_m rows[q + m - M] @ blocks[m], as
    one matrix product of the 2M + 1 shifted rows side by side (plain torch: the kernel's arithmetic)."""
    reach = (blocks.shape[0] - 1) // 2
    count = rows.shape[1]
    padded = F.pad(rows, (0, 0, reach, reach))
    shifted = torch.cat([padded[:, m : m + count] for m in range(2 * reach + 1)], dim=2)
    return shifted @ blocks.reshape(-1, blocks.shape[2])


def superrow_tiles(width_out: int, activate_input: bool = True) -> dict[str, int]:
    """The kernel's default tile for super-rows of width_out output features (not yet measured on a GPU: the
    benchmark sweeps BLOCK_M, BLOCK_N, warps and STAGES); STAGES absent unrolls the loop over blocks."""
    return dict(BLOCK_M=64, BLOCK_N=min(width_out, 128), num_warps=4, num_stages=1)


def _tile(tile: list[int] | None, width_out: int, activate_input: bool) -> dict[str, int]:
    """The ops' `tile` list as a launch config; None or empty: `superrow_tiles`."""
    return tile_config(tile or [], SUPERROW_TILE_KEYS) or superrow_tiles(width_out, activate_input)


def _check_rows(x: Tensor, blocks: Tensor, samples: int) -> None:
    """ValueError unless x [B, C, T] is compact channels-last rows (channel stride 1, time stride C), T a multiple
    of samples, and blocks [2M + 1, S C, W_out] fit them with widths powers of two from 16 up (the kernel's sizes)."""
    _, channels, length = x.shape
    if not _compact_rows(x):
        raise ValueError(f"super-rows need compact channels-last rows: x's strides {tuple(x.stride())} are not "
                         f"(*, 1, {channels})")  # fmt: skip
    if length % samples:
        raise ValueError(f"super-rows of {samples} samples need T a multiple of {samples}, not {length}")
    width_in, width_out = blocks.shape[1], blocks.shape[2]
    if width_in != samples * channels or width_out % samples:
        raise ValueError(f"blocks {tuple(blocks.shape)} are not for {samples} samples of {channels} channels")
    for width in (width_in, width_out):
        if width < 16 or width & (width - 1):
            raise ValueError(f"super-rows need widths that are powers of two from 16 up, not {width}")


def _triton_forward(x, blocks, bias, residual, valid, rate, samples, slope, activate_input=True,
                    activate_output=False, config=None) -> Tensor:  # fmt: skip
    """out [B, C_out, T] from one launch of superrow_kernels.superrow_conv."""
    from batchvoc.engines import superrow_kernels  # imports triton: GPU path only

    rows, c_in, length = x.shape
    c_out = blocks.shape[2] // samples
    out = channels_last_empty(rows, c_out, length, x)
    has_res = residual is not None
    res = residual if has_res else out  # never read when absent; a real pointer for the launcher
    valid, vs, has_span = span_launch_args(valid, x)
    config = dict(config or superrow_tiles(blocks.shape[2], activate_input))
    config.setdefault("STAGES", 0)
    cdiv = superrow_kernels.triton.cdiv
    grid = (cdiv(length // samples, config["BLOCK_M"]), cdiv(blocks.shape[2], config["BLOCK_N"]), rows)
    launcher(superrow_kernels.superrow_conv, x)[grid](
        x, blocks, bias, res, out, valid, length, rate, slope, x.stride(0),
        *res.stride(), out.stride(0), *vs, C_IN=c_in, C_OUT=c_out, S=samples, M=(blocks.shape[0] - 1) // 2,
        HAS_RES=has_res, HAS_SPAN=has_span, ACTIVATE_INPUT=activate_input, ACTIVATE_OUTPUT=activate_output,
        DOT_PRECISION="ieee" if x.dtype == torch.float32 else "tf32",
        RES_ROWS=has_res and _compact_rows(res), SPAN_ROWS=rate % samples == 0, **config,
    )  # fmt: skip
    return out


def _torch_forward(x, blocks, bias, residual, valid, rate, samples, slope, activate_input=True,
                   activate_output=False, config=None) -> Tensor:  # fmt: skip
    """The kernel's arithmetic in plain torch (`superrow_product`): CPU, or a GPU without triton."""
    rows, c_in, length = x.shape
    c_out = blocks.shape[2] // samples
    a = F.leaky_relu(x, slope) if activate_input else x
    y = superrow_product(a.transpose(1, 2).reshape(rows, length // samples, samples * c_in), blocks)
    y = y.reshape(rows, length, c_out).transpose(1, 2) + bias[:, None]
    if residual is not None:
        y = y + residual
    if activate_output:
        y = F.leaky_relu(y, slope)
    y = Span.from_per_frame(valid).zero(y, rate)
    return channels_last_empty(rows, c_out, length, x).copy_(y)


def _superrow_kernels() -> list:
    from batchvoc.engines import superrow_kernels

    return [superrow_kernels.superrow_conv]


@kernel_op("superrow_conv", kernels=_superrow_kernels)
def superrow_conv(x: Tensor, blocks: Tensor, bias: Tensor, residual: Tensor | None, valid: Tensor, rate: int,
                  samples: int, slope: float, activate_input: bool = True, activate_output: bool = False,
                  tile: list[int] | None = None) -> Tensor:  # fmt: skip
    """fused_resblock.lrelu_conv computed over super-rows: x [B, C_in, T] with compact channels-last rows -> [B,
    C_out, T] (channels-last strides), zeroed outside the utterances, conv(leaky_relu(x)) + bias (+ residual)
    (leaky ReLU'd with activate_output); activate_input=False convolves x as it is.
    blocks [2M + 1, S C_in, S C_out] (`superrow_weights`), samples S per super-row (S divides T); valid [B, 2,
    T // rate] per-frame utterance bounds, or empty for whole utterances; tile: SUPERROW_TILE_KEYS' values (None
    or empty: `superrow_tiles`). Raises ValueError for rows, T or blocks it cannot take (`_check_rows`)."""
    _check_rows(x, blocks, samples)
    forward = _triton_forward if use_triton(x) else _torch_forward
    return forward(x, blocks, bias, residual, valid, rate, samples, slope, activate_input, activate_output,
                   _tile(tile, blocks.shape[2], activate_input))  # fmt: skip
