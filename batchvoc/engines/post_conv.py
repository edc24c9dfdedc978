"""A HiFi-GAN generator's last convolution (conv_post: C_in channels -> 1, e.g. gsv_v4's 16 -> 1, k=7) as one Triton
kernel, for the engines' copy of a model on a CUDA GPU:

    out[b, 0, t] = bias + sum_{k, c} w[k, c] * x[b, c, t + k*d - p]

with x zero outside [0, T), fp32 accumulation, the result kept in fp32 whatever x's dtype: the model's tanh after it
then runs on it unrounded, and the audio stays fp32 (an fp16 result rounded before tanh and again after it: gsv_v4
fp16 on an H200, SNR against fp32 eager 65.2 dB, against 69.0 dB for cuDNN's conv, whose bias Inductor adds with the
tanh in fp32). Per tile of time steps, each tap's
channels-last rows times the tap's weights, summed over channels (conv_kernels.conv_to_one).

Why: cuDNN took 0.37-0.40 ms for gsv_v4's conv_post on an H200 (fp16, 16 x 10 s: x [16, 16, 491520] channels-last),
where reading x once takes ~0.06-0.08 ms; this kernel takes 0.13 ms (`tiles`).

`conv_to_one` is a torch operator made with torch.library.triton_op (engines/ops.py), like fused_resblock's
`lrelu_conv`: torch.compile and AOTInductor compile its kernel into their own code. On a CPU it runs F.conv1d;
with TRITON_INTERPRET=1 the kernel runs on CPU tensors through Triton's interpreter (slow; tests).

The op is the convolution alone: the model applies leaky ReLU and the span's zeroing before conv_post and tanh
after it, outside the module this replaces (engines/layout.fused_resblocks), so Inductor fuses those as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from batchvoc.engines.ops import kernel_op
from batchvoc.engines.triton_runtime import channels_last_rows, launcher, pow2_between, use_triton


def tiles(c_in: int) -> dict[str, int]:
    """Tile sizes and launch shape for C_in input channels: all channels in one row (BLOCK_C), and 32 accumulator
    values per thread: one warp up to 64 channels (at least 16 time steps), more past that (unmeasured).

    H200, fp16, x [16, C, 7,864,320 / C] channels-last, k=7 (one sweep): 16 channels 0.132 ms at 64 steps and one
    warp (0.143-0.175 ms for the other tiles tried; cuDNN 0.372 ms), 32 channels 0.138 ms at 32 steps and one warp
    (0.147-0.176; cuDNN 0.297). A copy of x (read and write) took 0.123 ms, so about twice the time of reading x
    once: the taps' re-reads from L1, probably (not profiled)."""
    block_c = max(8, 1 << (c_in - 1).bit_length())
    block_m = pow2_between(1024 // block_c, 16, 256)
    return dict(BLOCK_M=block_m, BLOCK_C=block_c, num_warps=max(1, block_m * block_c // 1024), num_stages=1)


def out_length(length: int, ksize: int, dilation: int, padding: int) -> int:
    """Output samples of a stride-1 conv over `length` samples (length itself where it is same-padded)."""
    return length + 2 * padding - dilation * (ksize - 1)


def _empty_out(x: Tensor, length: int) -> Tensor:
    return torch.empty((x.shape[0], 1, length), dtype=torch.float32, device=x.device)


def _triton_forward(x: Tensor, weight: Tensor, bias: Tensor, dilation: int, padding: int) -> Tensor:
    from batchvoc.engines import conv_kernels  # imports triton: GPU path only

    rows, c_in, length = x.shape
    ksize = weight.shape[0]
    out = _empty_out(x, out_length(length, ksize, dilation, padding))
    config = tiles(c_in)
    grid = (conv_kernels.triton.cdiv(out.shape[2], config["BLOCK_M"]), rows)
    launcher(conv_kernels.conv_to_one, x)[grid](x, weight, bias, out, length, out.shape[2], dilation, padding,
                                                *x.stride(), out.stride(0), out.stride(2), C_IN=c_in, KSIZE=ksize,
                                                **config)  # fmt: skip
    return out


def _torch_forward(x: Tensor, weight: Tensor, bias: Tensor, dilation: int, padding: int) -> Tensor:
    """The kernel's function in plain torch: CPU, or a GPU without triton."""
    y = F.conv1d(x.float(), weight.float().t().unsqueeze(0), bias.float(), 1, padding, dilation)
    return _empty_out(x, y.shape[2]).copy_(y)  # the Triton path's strides, whatever F.conv1d picks


def _kernels() -> list:
    from batchvoc.engines import conv_kernels

    return [conv_kernels.conv_to_one]


@kernel_op("conv_to_one", kernels=_kernels)
def conv_to_one(x: Tensor, weight: Tensor, bias: Tensor, dilation: int, padding: int) -> Tensor:
    """x [B, C_in, T] (any strides; fast with channels-last, x.stride(1) == 1) -> [B, 1, T'] in fp32 (module doc), T' =
    `out_length(T, k, dilation, padding)` (T for a same-padded conv): the stride-1 convolution with weight [k, C_in]
    (contiguous), bias [1], `padding` zero samples on each side; module doc."""
    forward = _triton_forward if use_triton(x) else _torch_forward
    return forward(x, weight, bias, dilation, padding)


class PostConv(nn.Module):
    """An nn.Conv1d(C_in, 1, k) of stride 1, numeric zero padding and one group computed by `conv_to_one`:
    forward(x [B, C_in, T]) -> [B, 1, T'] as the conv gives it (T' = T for conv_post). Holds the weight as [k, C_in]
    (the kernel's order) and the bias (zero where the conv has none). Raises ValueError for any other conv."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        if type(conv) is not nn.Conv1d or conv.out_channels != 1:
            raise ValueError("PostConv needs an nn.Conv1d with one output channel")
        if conv.stride[0] != 1 or conv.groups != 1 or isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError("PostConv needs a stride-1, ungrouped, zero-padded Conv1d")
        self.dilation, self.padding = conv.dilation[0], conv.padding[0]
        self.weight = nn.Parameter(conv.weight.detach()[0].t().contiguous(), requires_grad=False)  # [k, C_in]
        bias = conv.bias.detach() if conv.bias is not None else conv.weight.new_zeros(1)
        self.bias = nn.Parameter(bias.clone(), requires_grad=False)
        self.channels_last = False  # engines/layout.channels_last_2d sets it: x then comes as channels-last rows
        conv_to_one.define()

    def forward(self, x: Tensor) -> Tensor:
        x = channels_last_rows(x) if self.channels_last else x
        return torch.ops.batchvoc.conv_to_one(x, self.weight, self.bias, self.dilation, self.padding)
