"""A stage's two widest first convs side by side as one launch (engines/first_convs.py): the packed weights, which
blocks pair, and the stage's output against the separate launches and the reference (plain torch, interpreter,
compiled)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from batchvoc.engines.first_convs import SharedFirstConvs, pair, share_first_convs, side_by_side
from batchvoc.engines.fused_resblock import FusedResBlock, lrelu_conv, lrelu_conv_halves
from batchvoc.models.hifigan import ResBlock1, ResBlock2
from tests.engines.kernels import CHANNELS, check_compiles, run_interpreted
from tests.engines.test_fused_resblock import _block, _check, _Stage


def _stage(kind: type = ResBlock1, kernels=(3, 5, 7), channels: int = CHANNELS, shared: bool = True):
    """(fused stage, reference stage): blocks of these kernel sizes, the two widest first convs side by side."""
    refs = [_block(kind, k, seed=k, channels=channels) for k in kernels]
    fused = _Stage([FusedResBlock(r) for r in refs])
    if shared:
        share_first_convs([list(fused.blocks)])
    return fused, _Stage(refs)


def test_weights_side_by_side_are_the_convs_side_by_side():
    torch.manual_seed(0)
    ws = [torch.randn(k, 6, o, dtype=torch.float64) for k, o in ((3, 4), (7, 5), (5, 2))]
    x = torch.randn(2, 6, 40, dtype=torch.float64)
    got = F.conv1d(x, side_by_side(ws).permute(2, 1, 0), padding=3)
    want = torch.cat([F.conv1d(x, w.permute(2, 1, 0), padding=(w.shape[0] - 1) // 2) for w in ws], dim=1)
    assert side_by_side(ws).shape == (7, 6, 11) and (got - want).abs().max() <= 1e-12


def _halves_against_one_output():
    """lrelu_conv_halves' two outputs against lrelu_conv's output split along its channels: (max error, the halves'
    channel strides); spans cut mid-frame, dilation 3."""
    torch.manual_seed(1)
    x = torch.randn(2, 60, CHANNELS).transpose(1, 2)  # channels-last, as the engines hand it
    weight, bias = torch.randn(5, CHANNELS, 2 * CHANNELS) * 0.1, torch.randn(2 * CHANNELS)
    valid = torch.tensor([[[0] * 15, [9] * 15], [[3] * 15, [57] * 15]])
    args = (weight, bias, valid, 4, 3, 6, 0.1)
    whole = lrelu_conv(x, weight, bias, None, *args[2:], activate_output=True)
    halves = lrelu_conv_halves(x, *args, activate_output=True)
    error = max((h - w).abs().max().item() for h, w in zip(halves, whole.split(CHANNELS, dim=1), strict=True))
    return error, [h.stride(1) for h in halves], [h.stride(2) for h in halves]


def test_halves_are_the_output_s_channel_halves_stored_compact():
    error, channel_strides, step_strides = _halves_against_one_output()
    assert error <= 1e-6 and channel_strides == [1, 1] and step_strides == [CHANNELS, CHANNELS]
    with pytest.raises(ValueError, match="even"):
        odd = torch.zeros(3, 4, 5)  # 5 output channels
        lrelu_conv_halves(torch.zeros(1, 4, 8), odd, torch.zeros(5), torch.zeros(0, 2, 0), 1, 1, 1, 0.1)


def test_halves_kernel_in_the_interpreter():
    run_interpreted(
        """
        from tests.engines.test_first_convs import _halves_against_one_output
        error, channel_strides, step_strides = _halves_against_one_output()
        assert error <= 1e-5 and channel_strides == [1, 1], (error, channel_strides)
        """
    )


def test_the_two_widest_first_convs_pair():
    fused, _ = _stage(shared=False)
    assert pair(list(fused.blocks)) == (1, 2)  # k = 5 and 7
    assert pair(list(_stage(kernels=(11, 3, 7), shared=False)[0].blocks)) == (2, 0)
    assert pair(list(_stage(ResBlock2, shared=False)[0].blocks)) is None  # one conv per group: its output is x + ...
    assert pair(list(fused.blocks)[:1]) is None
    odd = [FusedResBlock(ResBlock1(CHANNELS, k, [d, 3, 5])) for k, d in ((5, 1), (7, 2))]
    assert pair(odd) is None  # dilations differ


def test_stage_with_shared_first_convs_equals_reference():
    """Every kind of span, both layouts; and the same values as the stage without the shared launch."""
    fused, ref = _stage()
    assert isinstance(fused.blocks[0].shared_first, SharedFirstConvs)
    _check(fused, ref)
    plain, _ = _stage(shared=False)
    x = torch.randn(3, CHANNELS, 120)
    with torch.no_grad():
        from batchvoc.models.span import Span

        assert (fused(x, Span(None), 4) - plain(x, Span(None), 4)).abs().max() <= 1e-5


def test_compiles_without_graph_break():
    fused, ref = _stage()
    from batchvoc.models.span import Span

    check_compiles(fused, lambda x, v: Span(v).zero(ref(x, Span(v), 4), 4))


def test_triton_kernel_equals_reference_in_the_interpreter():
    run_interpreted(
        """
        from tests.engines.test_first_convs import _stage
        from tests.engines.test_fused_resblock import _check
        _check(*_stage())
        """
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("channels", [16, 32, 64])  # gsv_v4's fused stages: the tile differs per width
def test_gpu_stage_equals_reference(channels):
    pytest.importorskip("triton")
    fused, ref = _stage(kernels=(3, 7, 11), channels=channels)
    _check(fused.cuda(), ref, "cuda")
    _check(fused.cuda().half(), ref, "cuda", torch.float16, tol=1e-2)
    _check(fused.cuda().bfloat16(), ref, "cuda", torch.bfloat16, tol=5e-2)
