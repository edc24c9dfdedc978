"""The wide resblocks (engines/wide_resblock.py) against the reference ResBlock1 / ResBlock2, alone and as a stage,
and what a compile of a stage of them stores."""

from __future__ import annotations

import pytest
import torch

from batchvoc.engines.wide_resblock import WideResBlock
from batchvoc.models.hifigan import ResBlock1, ResBlock2
from batchvoc.models.span import Span
from tests.engines.kernels import CHANNELS, FRAMES, RATE, ROWS, generated_traffic
from tests.engines.test_fused_resblock import _block, _check, _Stage


@pytest.mark.parametrize("kind", [ResBlock1, ResBlock2])
@pytest.mark.parametrize("kernel_size", [3, 7])
def test_block_equals_reference(kind, kernel_size):
    """Every group but the last hands on its output's leaky ReLU, which the next residual add reads inverted."""
    ref = _block(kind, kernel_size)
    _check(WideResBlock(ref), ref)


@pytest.mark.parametrize("kind", [ResBlock1, ResBlock2])
def test_stage_equals_reference_stage(kind):
    refs = [_block(kind, k, seed=k) for k in (3, 5, 7)]
    wide = _Stage([WideResBlock(r) for r in refs])
    assert type(wide.blocks[0]).stage_mean is WideResBlock.stage_mean
    _check(wide, _Stage(refs))


def test_refuses_another_module():
    with pytest.raises(ValueError, match="ResBlock1 or ResBlock2"):
        WideResBlock(torch.nn.Conv1d(4, 4, 3))


def _stage_traffic(wide: bool) -> tuple[int, int]:
    """(tensors read, tensors stored) by Inductor's own kernels in its code for a stage of three ResBlock1 (k = 3, 5,
    7), stock or wide, on a CPU."""
    refs = [_block(ResBlock1, k, seed=k) for k in (3, 5, 7)]
    stage = _Stage([WideResBlock(r) for r in refs] if wide else refs)
    valid = torch.tensor([[0, FRAMES]] * ROWS).unsqueeze(-1).expand(-1, -1, FRAMES).contiguous()
    x = torch.randn(ROWS, CHANNELS, FRAMES * RATE)
    return generated_traffic(lambda x, v: stage(x, Span(v), RATE), (x, valid), "opaque")


def test_compiled_stage_reads_fewer_tensors_than_the_stock_blocks():
    """Inductor stores a stock group's activated sum only, but makes each later residual again from every earlier
    conv output and x (a block's third group reads four tensors for it); a wide block's reads one, the activated
    sum inverted: at least three reads fewer per block. No more stores either."""
    (stock_reads, stock_stores), (wide_reads, wide_stores) = _stage_traffic(False), _stage_traffic(True)
    assert wide_reads <= stock_reads - 9 and wide_stores <= stock_stores, (stock_reads, wide_reads)  # 49 -> 37 here
