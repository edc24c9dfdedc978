"""BigVGAN's periodic activations: Snake and SnakeBeta (NVIDIA/BigVGAN semantics, fp16/bf16 safe).

    Snake(x)     = x + 1 / (alpha + eps) * sin(alpha * x) ** 2
    SnakeBeta(x) = x + 1 / (beta  + eps) * sin(alpha * x) ** 2          eps = 1e-9

With `alpha_logscale` the parameters hold log(alpha) / log(beta) and are exponentiated at use. Parameter names
(`alpha`, `beta`) and shapes ([channels]) are upstream's, so upstream state dicts load unchanged.

Half precision: in fp16, 1 / (beta + 1e-9) overflows once beta < 1.5e-5 (and 1e-9 itself underflows to 0), so a
tiny beta turns into inf, and inf * sin(..)**2 into inf or NaN. Here the parameters are always read as float32 and
the whole expression is evaluated in float32 (at least), then cast back to the input's dtype. For fp32 input this
is exactly upstream's arithmetic, operation for operation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

NO_DIV_BY_ZERO = 1e-9


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32, or float64 when the input already is."""
    return torch.promote_types(dtype, torch.float32)


class Snake(nn.Module):
    """x [B, C, T] -> x + 1/alpha * sin(alpha x)^2, one alpha per channel."""

    def __init__(
        self, in_features: int, alpha: float = 1.0, alpha_trainable: bool = True, alpha_logscale: bool = False
    ):
        super().__init__()
        self.in_features = in_features
        self.alpha_logscale = alpha_logscale
        init = torch.zeros(in_features) * alpha if alpha_logscale else torch.ones(in_features) * alpha
        self.alpha = nn.Parameter(init, requires_grad=alpha_trainable)

    def forward(self, x: Tensor) -> Tensor:
        work = _work_dtype(x.dtype)
        alpha = self.alpha.to(work).unsqueeze(0).unsqueeze(-1)
        if self.alpha_logscale:
            alpha = torch.exp(alpha)
        y = x.to(work)
        y = y + (1.0 / (alpha + NO_DIV_BY_ZERO)) * torch.pow(torch.sin(y * alpha), 2)
        return y.to(x.dtype)


class SnakeBeta(nn.Module):
    """x [B, C, T] -> x + 1/beta * sin(alpha x)^2: alpha sets the frequency, beta the magnitude, per channel."""

    def __init__(
        self, in_features: int, alpha: float = 1.0, alpha_trainable: bool = True, alpha_logscale: bool = False
    ):
        super().__init__()
        self.in_features = in_features
        self.alpha_logscale = alpha_logscale
        init = torch.zeros(in_features) * alpha if alpha_logscale else torch.ones(in_features) * alpha
        self.alpha = nn.Parameter(init.clone(), requires_grad=alpha_trainable)
        self.beta = nn.Parameter(init.clone(), requires_grad=alpha_trainable)

    def forward(self, x: Tensor) -> Tensor:
        work = _work_dtype(x.dtype)
        alpha = self.alpha.to(work).unsqueeze(0).unsqueeze(-1)
        beta = self.beta.to(work).unsqueeze(0).unsqueeze(-1)
        if self.alpha_logscale:
            alpha = torch.exp(alpha)
            beta = torch.exp(beta)
        y = x.to(work)
        y = y + (1.0 / (beta + NO_DIV_BY_ZERO)) * torch.pow(torch.sin(y * alpha), 2)
        return y.to(x.dtype)


def make_activation(name: str, channels: int, alpha_logscale: bool) -> nn.Module:
    """`activation` from a BigVGAN config ("snake" | "snakebeta") -> the module."""
    if name == "snake":
        return Snake(channels, alpha_logscale=alpha_logscale)
    if name == "snakebeta":
        return SnakeBeta(channels, alpha_logscale=alpha_logscale)
    raise ValueError(f"activation must be 'snake' or 'snakebeta', got {name!r}")
