"""The convolution to one output channel (engines/post_conv.py) against nn.Conv1d: the torch path on the CPU, the
Triton kernel through Triton's interpreter (CPU) and on a GPU, traced by torch.compile and torch.export, and as
HiFi-GAN's conv_post in the engines' rewrite (engines/layout.fused_resblocks)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from batchvoc.engines import layout
from batchvoc.engines.post_conv import PostConv, conv_to_one, out_length, tiles
from batchvoc.engines.triton_runtime import triton_available
from batchvoc.models.bigvgan import BigVGAN
from batchvoc.models.hifigan import HiFiGAN
from tests.engines.kernels import layouts, run_interpreted
from tests.engines.test_layout import SMALL, _randomize, _spans, assert_same_audio

# (C_in, kernel size, dilation, padding, T): gsv_v4's conv_post geometry; C_in not a power of two, dilated; fewer
# than 8 channels, padding that shortens the output; padding that lengthens it. T is no multiple of any BLOCK_M.
GEOMETRIES = [(16, 7, 1, 3, 301), (20, 7, 3, 9, 157), (5, 3, 2, 1, 77), (24, 5, 1, 4, 45)]
# of max(1, |out|): fp32 sums of the rounded inputs, left unrounded, whatever the dtype
TOLERANCE = ((torch.float32, 1e-5), (torch.float16, 1e-5), (torch.bfloat16, 1e-5))


def _conv(c_in: int, ksize: int, dilation: int, padding: int, bias: bool = True, seed: int = 0) -> nn.Conv1d:
    conv = nn.Conv1d(c_in, 1, ksize, padding=padding, dilation=dilation, bias=bias)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in conv.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / (c_in * ksize) ** 0.5)
    return conv.eval().requires_grad_(False)


def _check(device: str = "cpu", dtypes=TOLERANCE) -> None:
    """PostConv on device in each dtype and both layouts of x (contiguous, channels-last) against nn.Conv1d in fp32
    on the same rounded inputs, for every GEOMETRIES entry."""
    for i, (c_in, ksize, dilation, padding, length) in enumerate(GEOMETRIES):
        conv = _conv(c_in, ksize, dilation, padding, bias=i != 1, seed=i)
        x = torch.randn(3, c_in, length, generator=torch.Generator().manual_seed(i))
        for dtype, tol in dtypes:
            post = PostConv(conv).to(device=device, dtype=dtype)
            rounded = copy.deepcopy(conv).to(dtype).float()
            want = rounded(x.to(dtype).float())
            for inp in layouts(x):
                got = post(inp.to(device=device, dtype=dtype))
                assert got.shape == want.shape == (3, 1, out_length(length, ksize, dilation, padding))
                assert got.dtype == torch.float32 and got.device.type == device  # unrounded for the tanh
                err = (got.float().cpu() - want).abs().max().item()
                assert err <= tol * max(1.0, want.abs().max().item()), (c_in, ksize, dilation, padding, dtype, err)


def test_torch_path_equals_conv1d():
    _check(dtypes=TOLERANCE[:1])


def test_packs_the_weight_tap_major_and_a_zero_bias_where_the_conv_has_none():
    conv = _conv(20, 7, 3, 9, bias=False)
    post = PostConv(conv)
    assert post.weight.shape == (7, 20) and post.weight.is_contiguous()
    assert torch.equal(post.weight, conv.weight[0].t()) and torch.equal(post.bias, torch.zeros(1))
    assert (post.dilation, post.padding, post.channels_last) == (3, 9, False)
    x = torch.randn(2, 20, 50)
    assert (conv_to_one(x, post.weight, post.bias, 3, 9) - conv(x)).abs().max() <= 1e-5  # the op, called as fn


def test_refuses_what_it_does_not_compute():
    with pytest.raises(ValueError, match="one output channel"):
        PostConv(nn.Conv1d(16, 2, 7, padding=3))
    for conv in (nn.Conv1d(16, 1, 7, stride=2), nn.Conv1d(16, 1, 7, padding="same"),
                 nn.Conv1d(16, 1, 7, padding=3, padding_mode="reflect")):  # fmt: skip
        with pytest.raises(ValueError, match="stride-1"):
            PostConv(conv)
    with pytest.raises(ValueError, match="one output channel"):
        PostConv(nn.ConvTranspose1d(16, 1, 7))


def test_tiles_span_every_channel_in_one_row():
    for c_in in (1, 5, 16, 20, 32, 64, 100, 512):
        config = tiles(c_in)
        assert config["BLOCK_C"] >= c_in and config["BLOCK_C"] & (config["BLOCK_C"] - 1) == 0
        assert config["BLOCK_M"] * config["BLOCK_C"] == 1024 * config["num_warps"] or config["BLOCK_M"] == 16
    assert tiles(16)["BLOCK_M"] == 64 and tiles(16)["num_warps"] == 1  # gsv_v4's conv_post: H200-measured


def test_triton_kernel_equals_conv1d_in_the_interpreter():
    run_interpreted(
        """
        from tests.engines.test_post_conv import _check
        _check()
        """
    )


def test_op_compiles_without_graph_break():
    """Under torch.compile (one whole graph, static shapes) the operator runs its plain-torch path on a CPU."""
    post = PostConv(_conv(16, 7, 1, 3))
    x = torch.randn(2, 16, 100)
    compiled = torch.compile(post, fullgraph=True, dynamic=False)
    assert (compiled(x) - post(x)).abs().max() <= 1e-6
    kernels = torch._library.triton.get_triton_kernels_for_op("batchvoc::conv_to_one")
    assert [k.fn.__name__ for k in kernels] == ["conv_to_one"]  # listed for Inductor's cache key (engines/ops.py)


def test_export_on_a_fake_gpu_launches_the_kernel():
    """torch.export of channels-last x on a (fake) GPU keeps the operator as one call; decomposed (what AOTInductor
    compiles), the call is one launch of conv_to_one."""
    pytest.importorskip("triton", reason="triton is not installed (GPU machines have it)")
    from torch._higher_order_ops.triton_kernel_wrap import kernel_side_table, triton_kernel_wrapper_functional
    from torch._subclasses.fake_tensor import FakeTensorMode

    post = PostConv(_conv(16, 7, 1, 3))
    post.channels_last = True
    with FakeTensorMode(allow_non_fake_inputs=True):
        post = post._apply(lambda t: torch.empty_like(t, device="cuda"))  # no data: the trace reads none
        x = torch.empty(2, 96, 16, device="cuda").transpose(1, 2)
        exported = torch.export.export(post, (x,))
    calls = [str(n.target) for n in exported.graph.nodes if str(n.target).startswith("batchvoc.")]
    assert calls == ["batchvoc.conv_to_one.default"]
    decomposed = exported.run_decompositions(decompose_custom_triton_ops=True).graph
    launches = decomposed.find_nodes(op="call_function", target=triton_kernel_wrapper_functional)
    assert [kernel_side_table.get_kernel(n.kwargs["kernel_idx"]).fn.__name__ for n in launches] == ["conv_to_one"]


def test_takes_channels_last_rows_in_a_trace():
    """With channels_last set (layout.channels_last_2d), x traced with [B, C, T] strides reaches the operator as
    channels-last rows: a trace picks the kernel's fast path from the strides it sees."""
    post = PostConv(_conv(16, 7, 1, 3))
    post.channels_last = True
    x = torch.randn(2, 16, 96)
    exported = torch.export.export(post, (x,))
    calls = [n for n in exported.graph.nodes if str(n.target).startswith("batchvoc.")]
    assert len(calls) == 1 and calls[0].args[0].meta["val"].stride(1) == 1
    torch.testing.assert_close(exported.module()(x), post(x), rtol=0, atol=0)


@pytest.mark.parametrize("resblock", ["1", "2"])
@pytest.mark.parametrize("order", ["ncl", "channels_last_2d"])
def test_hifigan_conv_post_becomes_post_conv_with_the_same_audio(resblock, order):
    """resblocks=fused also computes a HiFi-GAN's conv_post (with or without bias) by conv_to_one, taking
    channels-last rows under channels_last_2d; the model's output equals the reference's (fp32, <= 1e-5)."""
    torch.manual_seed(0)
    model = _randomize(HiFiGAN(**SMALL, resblock=resblock, conv_post_bias=resblock == "1"))
    fast = layout.apply(model, layout.Rewrites(order, "conv", "fused"))
    assert isinstance(fast.conv_post, PostConv) and fast.conv_post.channels_last == (order == "channels_last_2d")
    assert type(model.conv_post) is nn.Conv1d  # the reference is untouched
    assert_same_audio(model, fast)


def test_only_hifigan_conv_post_is_replaced():
    """BigVGAN's conv_post stays an nn.Conv1d (then cuDNN's Conv1dAs2d); so does a HiFi-GAN's under resblocks=conv."""
    torch.manual_seed(0)
    bigvgan = layout.apply(BigVGAN(**SMALL).eval(), layout.Rewrites("channels_last_2d", "fused", "fused"))
    assert type(bigvgan.conv_post) is layout.Conv1dAs2d
    assert not any(isinstance(m, PostConv) for m in bigvgan.modules())
    hifigan = layout.apply(HiFiGAN(**SMALL).eval(), layout.Rewrites("channels_last_2d", "conv", "conv"))
    assert type(hifigan.conv_post) is layout.Conv1dAs2d
    wide = layout.fused_resblocks(HiFiGAN(**SMALL).eval(), max_channels=0)  # no resblock fused, conv_post still
    assert isinstance(wide.conv_post, PostConv) and not any(type(m).__name__ == "FusedResBlock" for m in wide.modules())


def test_hifigan_with_its_kernels_equals_reference_in_the_interpreter():
    """The whole rewritten model, conv_post and the fused resblocks running their Triton kernels."""
    run_interpreted(
        """
        from batchvoc.engines import layout
        from batchvoc.models.hifigan import HiFiGAN
        from tests.engines.test_layout import SMALL, _randomize, _spans
        torch.manual_seed(0)
        model = _randomize(HiFiGAN(**SMALL))
        fast = layout.apply(model, layout.Rewrites("channels_last_2d", "conv", "fused"))
        mel = 2 * torch.randn(3, 20, 50) - 5
        with torch.no_grad():
            for valid in _spans(3, 50)[1:]:
                ref, out = model(mel, valid), fast(mel, valid)
                assert (out - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max()), valid
        """
    )


@pytest.mark.gpu
@pytest.mark.skipif(not triton_available()[0], reason=f"needs a CUDA GPU with triton: {triton_available()[1]}")
def test_triton_on_gpu_equals_conv1d():
    _check("cuda")
    torch.manual_seed(0)
    model = _randomize(HiFiGAN(**SMALL))
    fast = layout.apply(model, layout.Rewrites("channels_last_2d", "conv", "fused")).cuda()
    mel, valid = 2 * torch.randn(3, 20, 50) - 5, _spans(3, 50)[2]
    with torch.no_grad():
        ref, out = model(mel, valid), fast(mel.cuda(), valid.cuda()).cpu()
    assert (out - ref).abs().max() <= 1e-4 * max(1.0, ref.abs().max())
