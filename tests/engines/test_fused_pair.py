"""The ResBlock1 pair kernel (engines/fused_pair.py) against two plain-torch lrelu_conv steps: through Triton's
interpreter on the CPU (persistent programs taking several tiles, tiles reaching past both row ends, spans), inside
torch.compile, and in a FusedResBlock against the reference ResBlock1."""

from __future__ import annotations

import pytest
import torch

from batchvoc.engines.fused_pair import fits_pair, lrelu_conv_pair, lrelu_conv_pair_and_act
from batchvoc.engines.fused_resblock import FusedResBlock, PackedConv
from batchvoc.models.hifigan import ResBlock1
from batchvoc.models.span import Span
from tests.engines.kernels import CHANNELS, RATE, check_compiles, run_interpreted


def test_pair_kernel_equals_two_convs_in_the_interpreter():
    """k = 3, 7, 11 (c2's reach 1-5 steps each side of a 32-step tile), dilations 1-5, C_IN not a power of two,
    the input activated by c1 or taken as it is, the output's leaky ReLU stored or not, every kind of span."""
    run_interpreted(
        """
        from batchvoc.engines.fused_pair import _torch_pair, _triton_pair
        from batchvoc.models.span import Span
        from tests.engines.kernels import CHANNELS, FRAMES, RATE, ROWS, spans
        gen = torch.Generator().manual_seed(3)
        x = torch.randn(ROWS, FRAMES * RATE, CHANNELS, generator=gen).transpose(1, 2)  # channels-last
        res = torch.randn(ROWS, CHANNELS, FRAMES * RATE, generator=gen)
        for k, d in ((3, 1), (7, 3), (11, 5)):
            w1, w2 = (torch.randn(k, CHANNELS, CHANNELS, generator=gen) / 10 for _ in range(2))
            b1, b2 = torch.randn(CHANNELS, generator=gen), torch.randn(CHANNELS, generator=gen)
            for valid in spans():
                per_frame = Span(valid).per_frame(FRAMES, "cpu")
                args = (x, res, w1, b1, w2, b2, per_frame, RATE, d, d * (k - 1) // 2, 0.1)
                for act_in in (True, False):
                    for stages in (0, 2):
                        config = dict(BLOCK_M=32, BLOCK_C=32, num_warps=4, PER_SM=1, STAGES=stages)
                        want_act, got_act = torch.empty_like(x), torch.full_like(x, float("nan"))  # out's strides
                        want = _torch_pair(*args, act_in, activated=want_act)
                        got = _triton_pair(*args, act_in, config=config, activated=got_act)
                        assert (got - want).abs().max() <= 1e-4, (k, d, valid is None, act_in, stages)
                        assert torch.equal(got_act, torch.nn.functional.leaky_relu(got, 0.1))
                        assert got.stride(1) == 1  # channels-last
        """
    )


def test_fused_block_takes_pairs_where_they_fit():
    block = ResBlock1(CHANNELS, 7, [1, 3, 5])
    fused = FusedResBlock(block)
    assert fused.pairs == [True, True, True]
    packed = [PackedConv(c) for c in (block.convs1[0], block.convs2[0])]
    assert fits_pair(*packed) and not fits_pair(packed[0], PackedConv(torch.nn.Conv1d(CHANNELS, CHANNELS, 7, 1, 6, 2)))
    assert not fits_pair(*(PackedConv(torch.nn.Conv1d(96, 96, 3, padding=1)) for _ in range(2)))  # over 64 channels


@pytest.mark.parametrize("op", [lrelu_conv_pair, lrelu_conv_pair_and_act])
def test_pair_op_compiles_without_graph_break(op):
    gen = torch.Generator().manual_seed(4)
    w1, w2 = (torch.randn(7, CHANNELS, CHANNELS, generator=gen) / 10 for _ in range(2))
    b1, b2 = torch.randn(CHANNELS, generator=gen), torch.randn(CHANNELS, generator=gen)

    def pair(x, span, rate):
        valid = span.per_frame(x.shape[-1] // rate, x.device)
        out = op(span.zero(x, rate), span.zero(x, rate), w1, b1, w2, b2, valid, rate, 3, 9, 0.1)
        return out[0] + out[1] if isinstance(out, tuple) else out

    check_compiles(pair, lambda x, v: pair(x, Span(v), RATE))
