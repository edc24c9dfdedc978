"""Exact utterance edges inside fixed-size windows.

A window fed to a vocoder may hold frames outside its utterance (context before the first frame, log-mel
silence after the last, or the next utterance packed into the same row). Run whole, the utterance would instead
meet each layer's own padding there: zeros before a convolution, repeated edge values before BigVGAN's
anti-aliasing filters. A `Span` re-creates that padding at every layer, so each utterance's output equals its
whole-utterance output sample for sample, as long as utterances sharing a row are at least the model's
receptive field apart.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Span:
    """Where each frame of a window batch belongs.

    valid is one of
      - None: every frame is real (whole utterances); every method is the identity;
      - [B, 2] int: one utterance per row, real frames [start, end);
      - [B, 2, T] int: per frame t, the [start, end) frame range of the utterance that t belongs to (gap frames
        belong to the nearest utterance), so that a row can hold several utterances.
    """

    def __init__(self, valid: Tensor | None):
        self.valid = valid
        self._cache: dict[tuple[int, int], tuple[Tensor, Tensor, Tensor]] = {}

    def _bounds(self, x: Tensor, rate: int) -> tuple[Tensor, Tensor, Tensor]:
        """(t, start, end) in samples at `rate` samples per frame, broadcastable to x [B, C, T·rate]."""
        key = (rate, x.shape[-1])
        if key not in self._cache:
            t = torch.arange(x.shape[-1], device=x.device).view(1, 1, -1)
            valid = self.valid.to(x.device)
            if valid.dim() == 2:
                start, end = valid[:, 0].view(-1, 1, 1), valid[:, 1].view(-1, 1, 1)
            else:
                per_sample = valid.repeat_interleave(rate, dim=-1) if rate > 1 else valid
                start, end = per_sample[:, 0:1], per_sample[:, 1:2]
            self._cache[key] = (t, start * rate, end * rate)
        return self._cache[key]

    def zero(self, x: Tensor, rate: int = 1) -> Tensor:
        """x [B, C, T·rate] with samples outside their utterance set to 0 (what zero padding feeds a conv)."""
        if self.valid is None:
            return x
        t, start, end = self._bounds(x, rate)
        inside = (t >= start) & (t < end)
        return torch.where(inside, x, torch.zeros((), dtype=x.dtype, device=x.device))

    def edge(self, x: Tensor, rate: int = 1) -> Tensor:
        """x [B, C, T·rate] with samples outside their utterance replaced by its nearest edge sample."""
        if self.valid is None:
            return x
        t, start, end = self._bounds(x, rate)
        index = torch.minimum(torch.maximum(t, start), end - 1)
        return torch.gather(x, -1, index.expand(x.shape[0], x.shape[1], -1))
