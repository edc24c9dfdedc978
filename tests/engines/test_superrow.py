"""Super-row convolutions (engines/superrow.py): the block-Toeplitz weights against F.conv1d in plain torch, the
op's plain-torch path, and its Triton kernel through Triton's interpreter."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from batchvoc.engines.superrow import (
    superrow_product,
    superrow_reach,
    superrow_rows,
    superrow_samples,
    superrow_weights,
)


@pytest.mark.parametrize("channels", [16, 32, 64])
@pytest.mark.parametrize("ksize", [3, 7, 11])
@pytest.mark.parametrize("dilation", [1, 3, 5])
def test_superrow_product_is_the_conv(channels, ksize, dilation):
    gen = torch.Generator().manual_seed(ksize * dilation)
    samples, padding = superrow_samples(channels), dilation * (ksize - 1) // 2
    x = torch.randn(2, channels, 10 * samples, generator=gen, dtype=torch.float64)
    weight = torch.randn(ksize, channels, channels, generator=gen, dtype=torch.float64)
    blocks = superrow_weights(weight, dilation, padding, samples)
    reach = superrow_reach(ksize, dilation, samples)
    assert blocks.shape == (2 * reach + 1, 128, 128) and blocks.dtype == weight.dtype
    rows = x.transpose(1, 2).reshape(2, 10, 128)
    got = superrow_product(rows, blocks).reshape(2, 10 * samples, channels).transpose(1, 2)
    want = F.conv1d(x, weight.permute(2, 1, 0), None, 1, padding, dilation)
    assert (got - want).abs().max() <= 1e-12 * want.abs().max()


def test_reach_is_the_super_rows_each_side():
    assert superrow_reach(11, 1, 8) == 1 and superrow_reach(11, 1, 4) == 2 and superrow_reach(3, 1, 2) == 1
    assert superrow_reach(11, 5, 8) == 4 and superrow_reach(1, 1, 8) == 0


def test_weights_refuse_a_conv_that_is_not_same_padded():
    with pytest.raises(ValueError, match="same-padded"):
        superrow_weights(torch.zeros(3, 16, 16), 1, 0, 8)


def _layer(channels: int, ksize: int, dilation: int, seed: int = 0, rate: int = 8, frames: int = 30):
    """(x channels-last [3, C, frames * rate], weight [k, C, C], bias, residual [3, C, T] in [B, C, T] order,
    blocks, samples, padding) for one conv."""
    gen = torch.Generator().manual_seed(seed)
    length = frames * rate
    x = torch.randn(3, length, channels, generator=gen).transpose(1, 2)
    weight = torch.randn(ksize, channels, channels, generator=gen) / (channels * ksize) ** 0.5
    bias, residual = torch.randn(channels, generator=gen), torch.randn(3, channels, length, generator=gen)
    samples, padding = superrow_samples(channels), dilation * (ksize - 1) // 2
    return x, weight, bias, residual, superrow_weights(weight, dilation, padding, samples), samples, padding


def _bounds(rate: int = 8, frames: int = 30) -> list[torch.Tensor]:
    """The ops' valid argument for tests/engines/kernels.spans() (none, per row, two utterances in row 1), and row 1
    split at an odd frame instead (where S = 2 rate, a super-row holding both utterances' samples)."""
    from batchvoc.models.span import Span
    from tests.engines.kernels import spans

    odd = spans()[2].clone()
    odd[1, :, :13], odd[1, :, 13:] = torch.tensor([2, 13]).view(2, 1), torch.tensor([13, 27]).view(2, 1)
    return [Span(valid).per_frame(frames, "cpu") for valid in (*spans(), odd)]


def _check_layer(forward, channels, ksize, dilation, rate=8, config=None, tol=1e-5):
    """forward (superrow's _torch_forward or _triton_forward) against lrelu_conv's plain-torch arithmetic for each
    span, with and without residual (channels-first and compact channels-last), and each activation."""
    from batchvoc.engines.fused_resblock import _torch_forward as conv

    x, weight, bias, residual, blocks, samples, padding = _layer(channels, ksize, dilation, rate=rate)
    flags = [(True, False, True), (False, False, False), (True, True, False), (False, True, True)]
    for valid in _bounds(rate):
        for act_in, act_out, has_res in flags:
            res = (residual if act_in else superrow_rows(residual)) if has_res else None  # both residual layouts
            want = conv(x, weight, bias, res, valid, rate, dilation, padding, 0.1, act_in, act_out)
            got = forward(x, blocks, bias, res, valid, rate, samples, 0.1, act_in, act_out, config=config)
            assert got.shape == want.shape and got.stride(1) == 1
            err = (got - want).abs().max()
            assert err <= tol * want.abs().max(), (channels, ksize, dilation, act_in, act_out, has_res, err)


@pytest.mark.parametrize("channels", [16, 32, 64])
def test_torch_path_equals_lrelu_conv(channels):
    from batchvoc.engines.superrow import _torch_forward

    for ksize, dilation in ((3, 1), (7, 1), (11, 1), (7, 3), (11, 5)):
        _check_layer(_torch_forward, channels, ksize, dilation)


def test_op_returns_channels_last_output():
    from batchvoc.engines.fused_resblock import lrelu_conv
    from batchvoc.engines.superrow import superrow_conv

    x, weight, bias, residual, blocks, samples, padding = _layer(16, 7, 1)
    valid = _bounds()[2]
    want = lrelu_conv(x, weight, bias, residual, valid, 8, 1, padding, 0.1)
    got = superrow_conv(x, blocks, bias, residual, valid, 8, samples, 0.1)
    assert got.stride(1) == 1 and (got - want).abs().max() <= 1e-5 * want.abs().max()


def test_ops_refuse_rows_they_cannot_take():
    from batchvoc.engines.superrow import superrow_conv

    x, _, bias, _, blocks, samples, _ = _layer(16, 7, 1)
    empty = torch.zeros(0, 2, 0, dtype=torch.int64)
    with pytest.raises(ValueError, match="compact channels-last rows"):
        superrow_conv(x.contiguous(), blocks, bias, None, empty, 8, samples, 0.1)
    with pytest.raises(ValueError, match="compact channels-last rows"):
        superrow_conv(x[:, :, ::2], blocks, bias, None, empty, 8, samples, 0.1)
    with pytest.raises(ValueError, match="T a multiple of 8"):
        superrow_conv(x[:, :, :-4], blocks, bias, None, empty, 8, samples, 0.1)
    with pytest.raises(ValueError, match="not for 4 samples"):
        superrow_conv(x, blocks, bias, None, empty, 8, 4, 0.1)


@pytest.mark.parametrize("channels", [16, 32])
def test_kernel_equals_the_conv_in_the_interpreter(channels):
    """k 3 / 7 / 11, d 1 / 3; blocks unrolled and pipelined, output tiles of 64 and 128 features; a frame rate that
    S does not divide (super-rows straddling frames: the span is zeroed per sample)."""
    from tests.engines.kernels import run_interpreted

    run_interpreted(
        f"""
        from batchvoc.engines.superrow import _triton_forward
        from tests.engines.test_superrow import _check_layer
        unrolled = dict(BLOCK_M=16, BLOCK_N=64, num_warps=4, num_stages=1)
        pipelined = dict(BLOCK_M=32, BLOCK_N=128, num_warps=4, num_stages=1, STAGES=2)
        for i, (ksize, dilation) in enumerate(((3, 1), (7, 1), (11, 1), (3, 3), (7, 3), (11, 3))):
            _check_layer(_triton_forward, {channels}, ksize, dilation, config=(unrolled, pipelined)[i % 2])
        _check_layer(_triton_forward, {channels}, 7, 1, rate={superrow_samples(channels) // 2}, config=unrolled)
        """
    )


def test_op_compiles_without_graph_break():
    from batchvoc.engines.superrow import superrow_conv

    x, weight, bias, residual, blocks, samples, padding = _layer(16, 7, 1)
    valid = _bounds()[2]
    superrow_conv.define()

    def step(x, residual, valid):
        h = torch.ops.batchvoc.superrow_conv(x, blocks, bias, None, valid, 8, samples, 0.1, activate_output=True)
        return torch.ops.batchvoc.superrow_conv(h, blocks, bias, residual, valid, 8, samples, 0.1, False) + h

    compiled = torch.compile(step, fullgraph=True, dynamic=False)
    with torch.no_grad():
        assert (compiled(x, residual, valid) - step(x, residual, valid)).abs().max() <= 1e-5


def _fused_and_reference(kind, channels: int, ksize: int, superrows: int = 2):
    """(FusedResBlock over super-rows, reference block) with dilations 1, 3, 5."""
    from batchvoc.engines.fused_resblock import FusedResBlock
    from tests.engines.test_fused_resblock import _block

    ref = _block(kind, ksize, seed=ksize, channels=channels)
    return FusedResBlock(ref, superrows=superrows), ref


def _block_spans(frames: int) -> list[torch.Tensor | None]:
    """No span, one utterance per row [3, 2], and per frame [3, 2, frames] with two utterances in row 1, the second
    from frame frames // 2 + 1 (odd for even frames: a super-row of 2 rate samples holds both utterances' samples)."""
    per_row = torch.tensor([[0, frames], [1, frames - 1], [2, frames // 2]])
    per_frame = per_row.unsqueeze(-1).repeat(1, 1, frames)
    split = frames // 2 + 1
    per_frame[1, :, :split] = torch.tensor([0, split - 1]).view(2, 1)
    per_frame[1, :, split:] = torch.tensor([split, frames]).view(2, 1)
    return [None, per_row, per_frame]


def _check_block(fused, ref, rate: int = 8, frames: int = 12, tol: float = 1e-5, device: str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:  # fmt: skip
    """fused (on device, in dtype) equals ref (CPU, fp32) inside the utterances (zero outside), both input layouts,
    every span of `_block_spans`."""
    from batchvoc.models.span import Span
    from tests.engines.kernels import layouts

    x = torch.randn(3, ref.channels, frames * rate, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for valid in _block_spans(frames):
            want = Span(valid).zero(ref(x, Span(valid), rate), rate)
            span = Span(None if valid is None else valid.to(device))
            for inp in layouts(x):
                got = fused(inp.to(device=device, dtype=dtype), span, rate)
                assert got.dtype == dtype
                err = (got.float().cpu() - want).abs().max()
                assert err <= tol * max(1.0, want.abs().max()), (valid, rate, err)


@pytest.mark.parametrize("kind", ["ResBlock1", "ResBlock2"])
@pytest.mark.parametrize("channels", [16, 32])
def test_fused_block_over_superrows_equals_reference(kind, channels):
    """Convs reaching at most 2 super-rows run over them, the others keep lrelu_conv; a frame rate that S does not
    divide runs every conv with lrelu_conv."""
    from batchvoc.models import hifigan

    for ksize in (3, 7, 11):
        fused, ref = _fused_and_reference(getattr(hifigan, kind), channels, ksize)
        samples = superrow_samples(channels)
        taken = [conv.samples for group in fused.groups for conv in group]
        assert taken == [samples if superrow_reach(ksize, conv.dilation, samples) <= 2 else 0
                         for group in fused.groups for conv in group]  # fmt: skip
        assert any(taken)
        _check_block(fused, ref)
        _check_block(fused, ref, rate=samples // 2)


def test_superrows_off_leaves_the_block_as_it_was():
    from batchvoc.engines.fused_resblock import FusedResBlock
    from batchvoc.models.hifigan import ResBlock1

    _, ref = _fused_and_reference(ResBlock1, 16, 11)
    plain, off = FusedResBlock(ref), FusedResBlock(ref, superrows=0)
    assert plain.state_dict().keys() == off.state_dict().keys() and not any("blocks" in k for k in plain.state_dict())
    assert all(conv.samples == 0 for group in off.groups for conv in group)
    assert FusedResBlock(ref, superrows=1).groups[0][0].blocks.shape == (3, 128, 128)  # k=11 d=1: M = 1


def test_stage_over_superrows_equals_reference_stage():
    from batchvoc.models.hifigan import ResBlock1
    from tests.engines.test_fused_resblock import _Stage

    pairs = [_fused_and_reference(ResBlock1, 16, k) for k in (3, 7, 11)]
    _check_block(_Stage([f for f, _ in pairs]), _Stage([r for _, r in pairs]))


def test_fused_block_over_superrows_in_the_interpreter():
    from tests.engines.kernels import run_interpreted

    run_interpreted(
        """
        from batchvoc.models.hifigan import ResBlock1, ResBlock2
        from tests.engines.test_fused_resblock import _Stage
        from tests.engines.test_superrow import _check_block, _fused_and_reference
        fused, ref = _fused_and_reference(ResBlock2, 32, 7)
        _check_block(fused, ref, frames=4)
        pairs = [_fused_and_reference(ResBlock1, 16, k) for k in (3, 11)]  # stored activations from k=7 up
        _check_block(_Stage([f for f, _ in pairs]), _Stage([r for _, r in pairs]), frames=4)
        """
    )


def test_fused_block_over_superrows_compiles_without_graph_break():
    from batchvoc.models.hifigan import ResBlock1
    from batchvoc.models.span import Span

    fused, ref = _fused_and_reference(ResBlock1, 16, 11)
    valid = _block_spans(12)[2]
    x = torch.randn(3, 16, 96)
    compiled = torch.compile(lambda x, v: fused(x, Span(v), 8), fullgraph=True, dynamic=False)
    with torch.no_grad():
        want = Span(valid).zero(ref(x, Span(valid), 8), 8)
        assert (compiled(x, valid) - want).abs().max() <= 1e-5 * max(1.0, want.abs().max())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("channels", [16, 32, 64])
@pytest.mark.parametrize("kind", ["ResBlock1", "ResBlock2"])
def test_fused_block_over_superrows_on_gpu(channels, kind):
    pytest.importorskip("triton")
    from batchvoc.models import hifigan

    for ksize in (3, 7, 11):
        fused, ref = _fused_and_reference(getattr(hifigan, kind), channels, ksize)
        _check_block(fused.cuda(), ref, device="cuda")
        _check_block(fused.cuda().half(), ref, device="cuda", dtype=torch.float16, tol=1e-2)
        _check_block(fused.cuda().bfloat16(), ref, device="cuda", dtype=torch.bfloat16, tol=5e-2)
        _check_block(fused.cuda(), ref, rate=superrow_samples(channels) // 2, device="cuda")
