"""Super-rows: a fused resblock conv of few channels as a block-Toeplitz product of 128-wide rows (opt-in, the
engine option `superrows`).

At 16 / 32 channels `lrelu_conv`'s per-tap products [BLOCK_M, C] x [C, C] are tiny (N = C) and leave the tensor
cores mostly idle. Channels-last x [B, C, T] (memory [B, T, C]) seen as [B, T / S, W], S = SUPERROW_WIDTH // C
samples per super-row and W = S * C features, is a free view; a same-padded stride-1 conv (k taps, dilation d,
padding p = d (k - 1) / 2) is then, per output super-row q,

    Y[q] = sum_{m = -M..M} X[q + m] @ B[m + M],    M = ceil(p / S)   (`superrow_reach`)
    B[m + M][(s_in, c_in), (s_out, c_out)] = w[j, c_in, c_out] where s_in + m S - s_out == j d - p, else 0

(`superrow_weights`; X zero outside [0, T / S)). (2M + 1) S / k times the FLOPs, but every product is
[BLOCK_M, W] x [W, BLOCK_N], and each super-row block is loaded once per m instead of once per tap. Expected to win
for undilated convs of k >= 7 at 16 and 32 channels (M = 1 or 2); a GPU session measures it
(benchmarks/superrow_tiles.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

SUPERROW_WIDTH = 128  # features per super-row: the tensor cores' K and N of one product


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


def superrow_product(rows: Tensor, blocks: Tensor) -> Tensor:
    """rows [B, R, W_in] (super-rows, zero outside [0, R)) -> [B, R, W_out]: sum_m rows[q + m - M] @ blocks[m], as
    one matrix product of the 2M + 1 shifted rows side by side (plain torch: the kernel's arithmetic)."""
    reach = (blocks.shape[0] - 1) // 2
    count = rows.shape[1]
    padded = torch.nn.functional.pad(rows, (0, 0, reach, reach))
    shifted = torch.cat([padded[:, m : m + count] for m in range(2 * reach + 1)], dim=2)
    return shifted @ blocks.reshape(-1, blocks.shape[2])
