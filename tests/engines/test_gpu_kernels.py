"""On a CUDA GPU: the fused Triton kernels against the reference modules (fp32/fp16/bf16, spans, both layouts).

The anti-aliased Snake / SnakeBeta kernels against Activation1d; the fused resblocks (pointer loads and block
copies, by channel count) against ResBlock1 / ResBlock2. Skips without a GPU or without triton.
"""

from __future__ import annotations

import pytest
import torch

from batchvoc.engines.fused_antialias import FusedActivation1d
from batchvoc.engines.fused_resblock import FusedResBlock, TileTable
from batchvoc.engines.triton_runtime import triton_available
from batchvoc.models.activations import Snake, SnakeBeta
from batchvoc.models.antialias import Activation1d
from batchvoc.models.hifigan import ResBlock1, ResBlock2
from batchvoc.models.span import Span

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not triton_available()[0], reason=f"needs a CUDA GPU with triton: {triton_available()[1]}"),
]

C, R, F, B = 48, 4, 40, 3
TOLERANCE = ((torch.float32, 1e-5), (torch.float16, 2e-2), (torch.bfloat16, 1e-1))


def _spans() -> torch.Tensor:
    """valid [B, 2, F]: a whole row, an inner span, and a row holding two utterances."""
    v = torch.tensor([[0, F], [3, F - 2], [5, 11]]).unsqueeze(-1).repeat(1, 1, F)
    v[1, :, :12] = torch.tensor([2, 12]).view(2, 1)
    v[1, :, 12:] = torch.tensor([14, 27]).view(2, 1)
    return v


def _layouts(x: torch.Tensor):
    return x, x.transpose(1, 2).contiguous().transpose(1, 2)  # [B, C, T] contiguous, and channels-last strides


def _check(fused, want, x, valid, what):
    for dtype, tol in TOLERANCE:
        for inp in _layouts(x):
            span = Span(None if valid is None else valid.cuda())
            got = fused.to(dtype)(inp.cuda().to(dtype), span, R).float().cpu()
            err = (got - want).abs().max().item() / max(1.0, want.abs().max().item())
            assert err <= tol, (what, dtype, err)


@pytest.mark.parametrize("kind", [Snake, SnakeBeta])
@pytest.mark.parametrize("spans", [False, True])
@pytest.mark.parametrize("method", ["two_pass", "recompute", "gather", "dot"])
def test_fused_antialias_equals_activation1d(kind, spans, method):
    act = kind(C, alpha_logscale=True)
    with torch.no_grad():
        for p in act.parameters():
            p.normal_(0, 0.5)
    ref = Activation1d(act).eval()
    x, valid = torch.randn(B, C, F * R), _spans() if spans else None
    _check(FusedActivation1d(ref, method).cuda(), ref(x, Span(valid), R), x, valid, f"{kind.__name__} {method}")


@pytest.mark.parametrize("method", ["recompute", "gather", "dot"])
def test_one_pass_antialias_equals_two_pass(method):
    """The one-pass kernel against the two-pass one in each dtype and layout, packed spans (both round `a` alike;
    FMA contraction may differ, so to a few units of the output's storage precision)."""
    act = SnakeBeta(C, alpha_logscale=True)
    with torch.no_grad():
        for p in act.parameters():
            p.normal_(0, 0.5)
    base = Activation1d(act).eval()
    x, span = torch.randn(B, C, F * R), Span(_spans().cuda())
    for dtype, tol in TOLERANCE:
        one, two = FusedActivation1d(base, method).cuda().to(dtype), FusedActivation1d(base).cuda().to(dtype)
        for inp in _layouts(x):
            inp = inp.cuda().to(dtype)
            got, want = one(inp, span, R), two(inp, span, R)
            assert got.stride() == inp.stride()
            assert (got.float() - want.float()).abs().max().item() <= tol / 4 * max(1.0, want.abs().max().item())


@pytest.mark.parametrize("kind, channels", [(ResBlock1, 16), (ResBlock2, 32), (ResBlock1, 24), (ResBlock1, 32),
                                            (ResBlock1, 64), (ResBlock2, 64)])  # fmt: skip
@pytest.mark.parametrize("spans", [False, True])
def test_fused_resblock_equals_reference(kind, channels, spans):
    block = kind(channels, 7, [1, 3, 5])
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, (channels * 7) ** -0.5)
    block.eval()
    x, valid = torch.randn(B, channels, F * R), _spans() if spans else None
    want = Span(valid).zero(block(x, Span(valid), R), R)
    _check(FusedResBlock(block).cuda(), want, x, valid, f"{kind.__name__} {channels}")


def test_fused_resblock_with_a_tile_table():
    """A tile_table entry (engine option) drives the kernel's tiles; the result is the same function."""
    block = ResBlock1(32, 7, [1, 3, 5]).eval()
    table = TileTable({"32,7,1": {"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_C": 32, "num_warps": 4, "num_stages": 1}})
    fused = FusedResBlock(block, table)
    assert fused.tiles[0][0] == [64, 32, 32, 4, 1, 0]
    x = torch.randn(B, 32, F * R)
    _check(fused.cuda(), Span(None).zero(block(x, Span(None), R), R), x, None, "tile_table")
