"""Super-row convolutions (engines/superrow.py): the block-Toeplitz weights against F.conv1d in plain torch, the
op's plain-torch path, and its Triton kernel through Triton's interpreter."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from batchvoc.engines.superrow import superrow_product, superrow_reach, superrow_samples, superrow_weights


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
