"""Exact utterance edges inside fixed-size windows.

A window fed to a vocoder may hold frames outside its utterance (context before the first frame, log-mel
silence after the last). Run whole, the utterance would instead meet each layer's own padding there: zeros
before a convolution, repeated edge values before BigVGAN's anti-aliasing filters. A `Span` re-creates that
padding at every layer, so a window's output equals the whole-utterance output sample for sample.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Span:
    """The valid frames [start, end) of each window in a batch.

    valid: [B, 2] int64 frame indices into the window (start may be 0, end may be the window length).
    `Span(None)` means every frame is valid: every method is then the identity.
    """

    def __init__(self, valid: Tensor | None):
        self.valid = valid
        self._positions: dict[tuple[int, int], tuple[Tensor, Tensor, Tensor]] = {}

    def _bounds(self, x: Tensor, rate: int) -> tuple[Tensor, Tensor, Tensor]:
        """(t [1, 1, T], start [B, 1, 1], end [B, 1, 1]) in samples at `rate` per frame."""
        key = (rate, x.shape[-1])
        if key not in self._positions:
            t = torch.arange(x.shape[-1], device=x.device).view(1, 1, -1)
            start = (self.valid[:, 0] * rate).view(-1, 1, 1)
            end = (self.valid[:, 1] * rate).view(-1, 1, 1)
            self._positions[key] = (t, start, end)
        return self._positions[key]

    def zero(self, x: Tensor, rate: int = 1) -> Tensor:
        """x [B, C, T·rate] with samples outside the span set to 0 (what zero padding feeds a conv)."""
        if self.valid is None:
            return x
        t, start, end = self._bounds(x, rate)
        inside = (t >= start) & (t < end)
        return torch.where(inside, x, torch.zeros((), dtype=x.dtype, device=x.device))

    def edge(self, x: Tensor, rate: int = 1) -> Tensor:
        """x [B, C, T·rate] with samples outside the span replaced by the nearest edge sample (replicate padding)."""
        if self.valid is None:
            return x
        t, start, end = self._bounds(x, rate)
        index = torch.minimum(torch.maximum(t, start), end - 1)
        return torch.gather(x, -1, index.expand(x.shape[0], x.shape[1], -1))
