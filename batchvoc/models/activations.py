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


class _SnakeBase(nn.Module):
    """Snake's per-channel alpha and the float32 (at least) arithmetic that Snake and SnakeBeta share."""

    def __init__(
        self, in_features: int, alpha: float = 1.0, alpha_trainable: bool = True, alpha_logscale: bool = False
    ):
        super().__init__()
        self.in_features = in_features
        self.alpha_logscale = alpha_logscale
        self.alpha = self._parameter(alpha, alpha_trainable)

    def _parameter(self, value: float, trainable: bool) -> nn.Parameter:
        """A [in_features] parameter as upstream initialises it: zeros * value in log scale, else ones * value."""
        # a factory call, no arithmetic: on the meta device (an actor's skeleton) arithmetic runs torch's Python
        # references, whose first call imports torch._dynamo (seconds of an actor's start)
        init = torch.full((self.in_features,), 0.0 if self.alpha_logscale else float(value))
        return nn.Parameter(init, requires_grad=trainable)

    def _read(self, param: Tensor, dtype: torch.dtype) -> Tensor:
        """param in dtype, exponentiated when the parameters are held in log scale."""
        value = param.to(dtype)
        return torch.exp(value) if self.alpha_logscale else value

    def _magnitude(self, alpha: Tensor, dtype: torch.dtype) -> Tensor:
        """The parameter under 1 / (. + eps), read in dtype: alpha itself for Snake."""
        return alpha

    def _params(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """(alpha, 1 / (magnitude + eps)) as [C] tensors in dtype."""
        alpha = self._read(self.alpha, dtype)
        return alpha, 1.0 / (self._magnitude(alpha, dtype) + NO_DIV_BY_ZERO)

    def params_fp32(self) -> tuple[Tensor, Tensor]:
        """(alpha, inv) as float32 [C]: the frequency alpha and inv = 1 / (magnitude + 1e-9), log scale undone."""
        return self._params(torch.float32)

    def forward(self, x: Tensor) -> Tensor:
        work = _work_dtype(x.dtype)
        alpha, inv = (p.unsqueeze(0).unsqueeze(-1) for p in self._params(work))
        y = x.to(work)
        y = y + inv * torch.pow(torch.sin(y * alpha), 2)
        return y.to(x.dtype)


class Snake(_SnakeBase):
    """x [B, C, T] -> x + 1/alpha * sin(alpha x)^2, one alpha per channel."""


class SnakeBeta(_SnakeBase):
    """x [B, C, T] -> x + 1/beta * sin(alpha x)^2: alpha sets the frequency, beta the magnitude, per channel."""

    def __init__(
        self, in_features: int, alpha: float = 1.0, alpha_trainable: bool = True, alpha_logscale: bool = False
    ):
        super().__init__(in_features, alpha, alpha_trainable, alpha_logscale)
        self.beta = self._parameter(alpha, alpha_trainable)

    def _magnitude(self, alpha: Tensor, dtype: torch.dtype) -> Tensor:
        """beta, read in dtype."""
        return self._read(self.beta, dtype)


def make_activation(name: str, channels: int, alpha_logscale: bool) -> nn.Module:
    """`activation` from a BigVGAN config ("snake" | "snakebeta") -> the module."""
    if name == "snake":
        return Snake(channels, alpha_logscale=alpha_logscale)
    if name == "snakebeta":
        return SnakeBeta(channels, alpha_logscale=alpha_logscale)
    raise ValueError(f"activation must be 'snake' or 'snakebeta', got {name!r}")
