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

    def _bounds(self, x: Tensor, rate: int, length: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(t, start, end) in samples at `rate` samples per frame, broadcastable to x [B, C, T·rate].

        length: T·rate when it differs from x.shape[-1] (x then only gives the device)."""
        length = x.shape[-1] if length is None else length
        key = (rate, length)
        if key not in self._cache:
            t = torch.arange(length, device=x.device).view(1, 1, -1)
            valid = self.valid.to(x.device)
            if valid.dim() == 2:
                start, end = valid[:, 0].view(-1, 1, 1), valid[:, 1].view(-1, 1, 1)
            else:
                # each sample's frame's bounds, as an index_select (Inductor 2.11-2.13 fails on repeat_interleave /
                # expand + reshape here: "vr must not be None" in its index simplification)
                frame = torch.div(t.view(-1), rate, rounding_mode="floor")
                per_sample = valid.index_select(-1, frame)
                start, end = per_sample[:, 0:1], per_sample[:, 1:2]
            self._cache[key] = (t, start * rate, end * rate)
        return self._cache[key]

    @classmethod
    def from_per_frame(cls, valid: Tensor) -> Span:
        """The inverse of per_frame: a Span of valid [B, 2, F], or of whole utterances when valid is empty."""
        return cls(valid if valid.numel() else None)

    def per_frame(self, frames: int, device: torch.device | str) -> Tensor:
        """valid as [B, 2, frames] int64 on device (the form the Triton kernels read), or an empty [0, 2, 0] tensor
        for whole utterances (valid None)."""
        if self.valid is None:
            return torch.zeros((0, 2, 0), dtype=torch.int64, device=device)
        valid = self.valid.to(device=device, dtype=torch.int64)
        return valid.unsqueeze(-1).expand(-1, -1, frames) if valid.dim() == 2 else valid

    def zero(self, x: Tensor, rate: int = 1) -> Tensor:
        """x [B, C, T·rate] with samples outside their utterance set to 0 (what zero padding feeds a conv)."""
        if self.valid is None:
            return x
        t, start, end = self._bounds(x, rate)
        inside = (t >= start) & (t < end)
        return torch.where(inside, x, torch.zeros((), dtype=x.dtype, device=x.device))

    def edge_index(self, x: Tensor, rate: int = 1, length: int | None = None) -> Tensor:
        """Index [B or 1, 1, T·rate] (int64) such that edge(x)[..., t] == x[..., index[t]]; arange without valid.

        length: T·rate when it differs from x.shape[-1] (x then only gives the device)."""
        length = x.shape[-1] if length is None else length
        if self.valid is None:
            return torch.arange(length, device=x.device).view(1, 1, -1)
        t, start, end = self._bounds(x, rate, length)
        # the outer clamp changes nothing for valid spans (0 <= start < end <= T); it bounds the index for compilers
        return torch.clamp(torch.minimum(torch.maximum(t, start), end - 1), 0, length - 1)

    def edge(self, x: Tensor, rate: int = 1) -> Tensor:
        """x [B, C, T·rate] with samples outside their utterance replaced by its nearest edge sample.

        The result has x's memory layout (a channels-last x stays channels-last)."""
        if self.valid is None:
            return x
        index = self.edge_index(x, rate).expand(x.shape[0], x.shape[1], -1)
        if x.is_contiguous() or torch.compiler.is_compiling():  # compiled: the compiler picks the layout
            return torch.gather(x, -1, index)
        return torch.gather(x, -1, index, out=torch.empty_like(x))
