"""HiFi-GAN upsamplers as one same-padded fused conv of their phases (engines/fused_upsample.py) against
nn.ConvTranspose1d: the plain-torch path (float64, every shipped geometry and more), the Triton kernel through its
interpreter, under torch.compile, and which upsamplers the fused_resblocks rewrite takes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from batchvoc.engines import layout
from batchvoc.engines.fused_resblock import FusedResBlock
from batchvoc.engines.fused_upsample import FusedUpsample, fits, phase_taps
from batchvoc.models.hifigan import LRELU_SLOPE, HiFiGAN, ResBlock1, upsampled_stage
from batchvoc.models.span import Span
from tests.engines.kernels import FRAMES, generated_launches, run_interpreted, spans

# (k, s): gsv_v4 (20, 10), (12, 6), (4, 2); HiFi-GAN V1 (16, 8); BigVGAN (8, 4); stride 1; k - s not a multiple of s
GEOMETRIES = [(20, 10), (12, 6), (4, 2), (16, 8), (8, 4), (3, 1), (6, 2), (10, 4)]


def _conv(k: int, s: int, c: int = 5, o: int = 3, bias: bool = True, dtype=torch.float64) -> nn.ConvTranspose1d:
    torch.manual_seed(k * s + c)
    return nn.ConvTranspose1d(c, o, k, s, padding=(k - s) // 2, bias=bias).to(dtype)


@pytest.mark.parametrize("k, s", GEOMETRIES)
@pytest.mark.parametrize("bias", [True, False])
def test_phases_equal_the_transposed_conv(k, s, bias):
    conv = _conv(k, s, bias=bias)
    fused = FusedUpsample(conv)
    for length in (1, 2, 7, 33):
        x = torch.randn(2, 5, length, dtype=torch.float64)
        with torch.no_grad():
            want, got = conv(x), fused(x)
        assert got.shape == want.shape == (2, 3, length * s)
        assert (got - want).abs().max() <= 1e-12, (k, s, length)
        assert got.stride(1) == 1  # channels-last: a view of the kernel's [B, s O, T] rows


def _check_stage_input(fused: FusedUpsample, conv: nn.ConvTranspose1d, dtype=torch.float64, tol=1e-12) -> None:
    """fused.stage_input on x [3, C, FRAMES * 2] (2 samples per frame) with every kind of span (kernels.spans) is
    the leaky ReLU of the transposed conv's output, zeroed outside the utterances."""
    s = conv.stride[0]
    x = torch.randn(3, conv.in_channels, FRAMES * 2, dtype=dtype)
    with torch.no_grad():
        for valid in spans():
            span = Span(valid)
            activated = fused.stage_input(x, span, 2)
            want = torch.nn.functional.leaky_relu(span.zero(conv(x), 2 * s), LRELU_SLOPE)
            assert activated.shape == want.shape and activated.stride(1) == 1
            assert (activated - want).abs().max() <= tol, valid


@pytest.mark.parametrize("k, s", GEOMETRIES)
def test_stage_input_is_the_zeroed_output_activated(k, s):
    """What a fused stage takes from its upsampler (hifigan.upsampled_stage): zeroed by the input's frames, which
    hold whole phase rows, and activated in the same launch."""
    conv = _conv(k, s)
    _check_stage_input(FusedUpsample(conv), conv)


def test_phase_taps_place_every_weight_once():
    """Each of W's k taps lands in exactly one phase (its other taps are zeros), and the tap count is 2 P + 1."""
    weight = torch.arange(1.0, 2 * 3 * 12 + 1).reshape(2, 3, 12)
    v = phase_taps(weight, 6, 3)
    assert v.shape == (3, 2, 18)  # gsv_v4's 12 / 6 upsampler: delta in {-1, 0, 1}
    assert sorted(v[v != 0].tolist()) == sorted(weight.flatten().tolist())


def test_fits_only_what_it_computes():
    assert fits(_conv(4, 2, c=32, o=16), 64) and not fits(_conv(4, 2, c=128, o=64), 64)
    assert not fits(_conv(4, 2, c=32, o=64), 64)  # 128 phase channels out
    assert not fits(nn.ConvTranspose1d(4, 4, 4, 2, padding=1, output_padding=1), 64)
    assert not fits(nn.ConvTranspose1d(4, 4, 5, 2, padding=1), 64)  # k - 2p = 3: T s + 1 samples
    assert not fits(nn.ConvTranspose1d(4, 4, 4, 2, padding=1, groups=2), 64)
    assert not fits(nn.Conv1d(4, 4, 3), 64)
    with pytest.raises(ValueError, match="ConvTranspose1d"):
        FusedUpsample(nn.ConvTranspose1d(4, 4, 4, 2, padding=1, dilation=2))


def test_rewrite_fuses_the_narrow_upsamplers_of_a_hifigan():
    """gsv_v4's geometry: upsamplers of at most fused_upsample.MAX_CHANNELS in and phases out are fused."""
    model = HiFiGAN(n_mels=20, upsample_rates=[10, 6, 2, 2, 2], upsample_kernel_sizes=[20, 12, 4, 4, 4],
                    upsample_initial_channel=512)  # fmt: skip
    fast = layout.fused_resblocks(model)
    assert [type(up) is FusedUpsample for up in fast.ups] == [False, False, True, True, True]  # from 128 -> 64


def test_triton_kernel_equals_the_transposed_conv_in_the_interpreter():
    run_interpreted(
        """
        from tests.engines.test_fused_upsample import GEOMETRIES, _conv
        from batchvoc.engines.fused_upsample import FusedUpsample
        for k, s in GEOMETRIES:
            conv = _conv(k, s, c=6, o=4, dtype=torch.float32)
            fused = FusedUpsample(conv)
            fused.channels_last = True
            x = torch.randn(2, 6, 19)
            with torch.no_grad():
                assert (fused(x) - conv(x)).abs().max() <= 1e-5, (k, s)
        from tests.engines.test_fused_upsample import _check_stage_input
        for k, s in GEOMETRIES[:4]:
            conv = _conv(k, s, c=6, o=4, dtype=torch.float32)
            _check_stage_input(FusedUpsample(conv), conv, torch.float32, 1e-5)
        """
    )


def test_compiles_without_graph_break():
    conv = _conv(4, 2, c=8, o=4, dtype=torch.float32)
    fused = FusedUpsample(conv)
    fused.channels_last = True
    x = torch.randn(2, 8, 24)
    with torch.no_grad():
        got = torch.compile(fused, fullgraph=True, dynamic=False)(x)
        assert (got - conv(x)).abs().max() <= 1e-5


def test_export_hands_the_op_channels_last_rows():
    """Exported (what an aoti package is built from), a channels-last FusedUpsample calls its operator on
    channels-last rows, also where x comes [B, C, T] strided, and the program equals the module."""
    from batchvoc.engines.ops import compiled_as

    conv = _conv(4, 2, c=8, o=4, dtype=torch.float32)
    fused = FusedUpsample(conv)
    fused.channels_last = True
    x = torch.randn(2, 8, 24)
    with torch.no_grad(), compiled_as("opaque"):
        exported = torch.export.export(fused, (x,), strict=False)
    calls = [n for n in exported.graph.nodes if str(n.target).startswith("batchvoc.")]
    assert len(calls) == 1 and calls[0].args[0].meta["val"].stride(1) == 1
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), conv(x), rtol=0, atol=1e-5)


def _stage_launches(device: str, how: str, from_upsampler: bool) -> int:
    """Inductor's own kernel launches in the code of a compiled upsampled stage (32 -> 16 channels, three fused
    resblocks; our kernels compiled `how`), after checking its output against eager: with the stage's input's
    activation made by the upsampler's launch or (from_upsampler False) by Inductor around it."""
    torch.manual_seed(0)
    blocks = torch.nn.ModuleList(FusedResBlock(ResBlock1(16, k, [1, 3, 5])) for k in (3, 7, 11)).to(device)
    up = FusedUpsample(_conv(4, 2, c=32, o=16, dtype=torch.float32)).to(device)
    for m in (up, *blocks):
        m.channels_last = True
    if not from_upsampler:
        up.stage_input = None  # hifigan.upsampled_stage then calls up() and the blocks make their input
    valid = torch.tensor([[0, 8], [2, 7]], device=device).unsqueeze(-1).expand(-1, -1, 8).contiguous()
    x = torch.randn(2, 32, 32, device=device).transpose(1, 2)  # 8 frames of 4 samples, channels-last

    def stage(x, valid):
        return upsampled_stage(up, blocks, x, Span(valid), 4, 2, LRELU_SLOPE)

    return generated_launches(stage, (x, valid), how)


def test_compiled_stage_takes_its_input_from_the_upsampler():
    """Compiled, the stage's input's activation comes out of the upsampler's launch: the kernel Inductor ran to make
    it is gone (the blocks read the stage's input only activated; its end comes activated from the last conv)."""
    assert _stage_launches("cpu", "opaque", True) == _stage_launches("cpu", "opaque", False) - 1 == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("how", ["opaque", "traced"])
def test_gpu_compiled_stage_takes_its_input_from_the_upsampler(how):
    """The same on the GPU, our kernels called or traced in (aoti's way)."""
    pytest.importorskip("triton")
    assert _stage_launches("cuda", how, True) <= _stage_launches("cuda", how, False) - 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float16, 1e-2), (torch.bfloat16, 5e-2)])
def test_gpu_kernel_equals_the_fp32_transposed_conv(dtype, tol):
    """gsv_v4's fused upsamplers (128 -> 64, 64 -> 32, 32 -> 16; k = 4, s = 2) on the GPU from channels-last rows,
    against the fp32 transposed conv (TF32 off), relative to its peak."""
    pytest.importorskip("triton")
    for c in (128, 64, 32):
        conv = _conv(4, 2, c=c, o=c // 2, dtype=torch.float32).cuda()
        fused = FusedUpsample(conv).to(dtype)
        fused.channels_last = True
        x = torch.randn(2, 300, c, device="cuda").transpose(1, 2)
        with torch.no_grad(), torch.backends.cudnn.flags(allow_tf32=False):
            want = conv(x)
            got = fused(x.to(dtype)).float()
        assert (got - want).abs().max() <= tol * want.abs().max(), (c, dtype)
