"""A ResBlock1 pair (HiFi-GAN, Kong et al. 2020: x + c2(lrelu(c1(lrelu(x))))) as one fused kernel.

Two `lrelu_conv` launches (engines/fused_resblock.py) move the pair's inner activation h through memory twice: the
first conv writes it, the second reads it. `lrelu_conv_pair` keeps it out of HBM: each persistent program computes
h for a tile plus c2's reach on both sides, puts it in a scratch slot of its own (re-used tile after tile, so it
stays in L2) and runs c2 on the slot's rows (engines/pair_kernels.py). Per pair that is x read (and its
activation, for c1's taps), out written: three passes where two launches make five. The tile's edges are computed
twice (2 P2 steps of BLOCK_M: 8% at k = 11, BLOCK_M = 128).

    out[b, o, t] = inside(t) * (b2[o] + sum_{k, i} w2[k, i, o] h[b, i, t + k - P2] + res[b, o, t])
    h[b, i, u] = inside(u) * leaky_relu(b1[i] + sum_{k, j} w1[k, j, i] act_in(x[b, j, u + k d - p]))

(the same function as `lrelu_conv` twice, fused_resblock's module doc; c2 same-padded of dilation 1, both convs
C -> C channels, C <= PAIR_MAX_CHANNELS). On a CPU the op runs those two steps in plain torch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from batchvoc.engines.ops import kernel_op
from batchvoc.engines.triton_runtime import (
    channels_last_empty,
    launcher,
    pow2_between,
    span_launch_args,
    tile_config,
    use_triton,
)

PAIR_MAX_CHANNELS = 64  # one tile holds all of h's channels, the next conv's input
PAIR_TILE_KEYS = ("BLOCK_M", "BLOCK_C", "num_warps", "STAGES", "PER_SM")  # a pair tile as a list of ints
INTERPRETER_PROGRAMS = 3  # persistent programs under Triton's interpreter: several tiles each, as on a GPU


def pair_tile(channels: int, k1: int, activate_input: bool) -> dict[str, int]:
    """The pair kernel's tile: BLOCK_M steps of h per tile, all channels (BLOCK_C), PER_SM persistent programs per
    multiprocessor; c1's taps pipelined STAGES deep where its rows go straight into the product."""
    config = dict(BLOCK_M=128, BLOCK_C=pow2_between(channels, 16, PAIR_MAX_CHANNELS), num_warps=4, PER_SM=2)
    if not activate_input and k1 > 3:
        config["STAGES"] = 2
    return config


def fits_pair(c1, c2) -> bool:
    """Whether two PackedConvs (fused_resblock) make a pair the kernel computes: C -> C both, at most
    PAIR_MAX_CHANNELS, the second same-padded of dilation 1, neither over super-rows."""
    k2, c_in, c_out = c2.weight.shape
    return (tuple(c1.weight.shape[1:]) == (c_in, c_out) and c_in == c_out <= PAIR_MAX_CHANNELS and c2.dilation == 1
            and 2 * c2.padding == k2 - 1 and not (c1.samples or c2.samples))  # fmt: skip


def _triton_pair(x, residual, w1, b1, w2, b2, valid, rate, dilation, padding, slope, activate_input, config=None,
                 activated=None) -> Tensor:  # fmt: skip
    from batchvoc.engines import pair_kernels  # imports triton: GPU path only

    rows, channels, length = x.shape
    k1, k2 = w1.shape[0], w2.shape[0]
    config = dict(config or pair_tile(channels, k1, activate_input))
    block_m, block_c, per_sm = config["BLOCK_M"], config["BLOCK_C"], config.pop("PER_SM")
    per_row = -(-length // (block_m - (k2 - 1)))
    tiles = rows * per_row
    programs = min(tiles, _multiprocessors(x) * per_sm)
    scratch = torch.empty((programs, block_m, block_c), dtype=x.dtype, device=x.device)
    out = channels_last_empty(rows, channels, length, x)
    valid, vs, has_span = span_launch_args(valid, x)
    flags = dict(C=channels, K1=k1, K2=k2, HAS_SPAN=has_span, ACTIVATE_INPUT=activate_input,
                 STORE_ACTIVATED=activated is not None,
                 DOT_PRECISION="ieee" if x.dtype == torch.float32 else "tf32")  # fmt: skip
    config.setdefault("STAGES", 0)
    launcher(pair_kernels.lrelu_conv_pair, x)[(programs,)](
        x, residual, w1, b1, w2, b2, out, out if activated is None else activated, scratch, valid, length, rate,
        dilation, padding, slope, per_row, tiles, *x.stride(), *residual.stride(), *out.stride(), *vs, **flags,
        **config,
    )  # fmt: skip
    return out


def _multiprocessors(x: Tensor) -> int:
    if not x.is_cuda:
        return INTERPRETER_PROGRAMS
    return torch.cuda.get_device_properties(x.device).multi_processor_count


def _torch_pair(x, residual, w1, b1, w2, b2, valid, rate, dilation, padding, slope, activate_input, config=None,
                activated=None) -> Tensor:  # fmt: skip
    """The pair's arithmetic as two plain-torch `lrelu_conv` steps: CPU, or a GPU without triton."""
    from batchvoc.engines.fused_resblock import _torch_forward  # fused_resblock builds pairs: imported there

    h = _torch_forward(x, w1, b1, None, valid, rate, dilation, padding, slope, activate_input, True)
    p2 = (w2.shape[0] - 1) // 2
    return _torch_forward(h, w2, b2, residual, valid, rate, 1, p2, slope, False, False, activated=activated)


def _pair_kernels() -> list:
    from batchvoc.engines import pair_kernels

    return [pair_kernels.lrelu_conv_pair]


def _forward(x: Tensor):
    return _triton_pair if use_triton(x) else _torch_pair


@kernel_op("lrelu_conv_pair", kernels=_pair_kernels)
def lrelu_conv_pair(x: Tensor, residual: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, valid: Tensor,
                    rate: int, dilation: int, padding: int, slope: float, activate_input: bool = True,
                    tile: list[int] | None = None) -> Tensor:  # fmt: skip
    """x [B, C, T] -> out [B, C, T] (channels-last strides), zeroed outside the utterances (module doc); residual
    [B, C, T]; w1 [k1, C, C], w2 [k2, C, C] (GEMM order, fused_resblock.PackedConv), b1, b2 [C]; c1 of `dilation`
    and `padding`, c2 same-padded; valid [B, 2, T // rate] or empty; tile: `PAIR_TILE_KEYS`' values (None or empty:
    `pair_tile`)."""
    config = tile_config(tile or [], PAIR_TILE_KEYS)
    return _forward(x)(x, residual, w1, b1, w2, b2, valid, rate, dilation, padding, slope, activate_input, config)


@kernel_op("lrelu_conv_pair_and_act", kernels=_pair_kernels)
def lrelu_conv_pair_and_act(x: Tensor, residual: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor,
                            valid: Tensor, rate: int, dilation: int, padding: int, slope: float,
                            activate_input: bool = True,
                            tile: list[int] | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """`lrelu_conv_pair` that also stores its output's leaky ReLU: (out, leaky_relu(out)), for the next pair."""
    activated = channels_last_empty(x.shape[0], x.shape[1], x.shape[2], x)
    config = tile_config(tile or [], PAIR_TILE_KEYS)
    out = _forward(x)(x, residual, w1, b1, w2, b2, valid, rate, dilation, padding, slope, activate_input, config,
                      activated)  # fmt: skip
    return out, activated
