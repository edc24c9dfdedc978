"""What the generator families (hifigan.py, bigvgan.py) share: constructors, receptive field, padding."""

from __future__ import annotations

from typing import Any, TypeVar

from torch import nn

G = TypeVar("G", bound="GeneratorMixin")


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps a stride-1 conv's length: (k - 1) * d / 2."""
    return (kernel_size * dilation - dilation) // 2


class GeneratorMixin:
    """from_hparams / from_preset and receptive_field() for an upstream-style generator (stages of resblocks)."""

    resblocks: nn.ModuleList
    num_kernels: int

    @classmethod
    def from_hparams(cls: type[G], **hparams: Any) -> G:
        """A random-init model from hparams (the constructor's keyword arguments)."""
        return cls(**hparams)

    @classmethod
    def from_preset(cls: type[G], preset: Any) -> G:
        """A random-init model from a presets.Preset of this family."""
        return cls(**preset.hparams)

    def stage_blocks(self, stage: int) -> nn.ModuleList:
        """The num_kernels resblocks that follow upsampling stage `stage` (their outputs are averaged)."""
        return self.resblocks[stage * self.num_kernels : (stage + 1) * self.num_kernels]

    def frame_reach(self) -> tuple[int, int]:
        """(before, after): input frames one output frame depends on, on each side."""
        raise NotImplementedError

    def receptive_field(self) -> int:
        """Frames of context needed on each side of a window so its inner output is exact."""
        return max(self.frame_reach())
