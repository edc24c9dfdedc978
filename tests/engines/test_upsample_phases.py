"""Transposed convs as the forward conv of their phases (engines/upsample_phases.py) against nn.ConvTranspose1d:
float64 and fp32 over a sweep of geometries and every shipped preset's upsamplers, the view's layout as the fused
kernels read it, and under Inductor (one forward convolution, read in place)."""

from __future__ import annotations

import re

import pytest
import torch

from batchvoc.engines.upsample_phases import PolyphaseConvTranspose1d
from batchvoc.models.presets import PRESETS


def _preset_upsamplers() -> dict[str, tuple[int, int, int, int, int]]:
    """'preset/stage' -> (C_in, O, k, s, p) of every transposed conv of the shipped presets, as the models build
    them (C_in = initial channels / 2^i, O half that, p = (k - s) / 2)."""
    found = {}
    for name, preset in sorted(PRESETS.items()):
        hp = preset.hparams
        for i, (s, k) in enumerate(zip(hp["upsample_rates"], hp["upsample_kernel_sizes"], strict=True)):
            channels = hp["upsample_initial_channel"] // 2**i
            found[f"{name}/{i}"] = (channels, channels // 2, k, s, (k - s) // 2)
    return found


PRESET_UPSAMPLERS = _preset_upsamplers()
# (C_in, O, k, s, p, output_padding, T, bias): k not a multiple of s, k < s, k = 1, odd p, p >= s, output_padding
# above p (x then gets zero frames), T shorter than the taps, no bias
TRANSPOSED = [(6, 5, 7, 3, 2, 0, 11, True), (6, 5, 2, 3, 0, 0, 9, True), (4, 3, 1, 2, 0, 1, 5, False),
              (8, 4, 5, 2, 1, 1, 8, True), (8, 4, 9, 2, 3, 0, 8, False), (5, 7, 16, 8, 0, 5, 3, True),
              (5, 7, 16, 8, 9, 3, 6, True), (3, 4, 11, 4, 5, 3, 2, True), (3, 4, 3, 1, 1, 0, 10, True),
              (3, 4, 20, 10, 5, 7, 1, False)]  # fmt: skip


def _transposed_pair(c_in, out, k, s, p, output_padding, bias, dtype):
    conv = torch.nn.ConvTranspose1d(c_in, out, k, s, padding=p, output_padding=output_padding, bias=bias)
    conv = conv.to(dtype)
    with torch.no_grad():
        if bias:
            conv.bias.normal_()
    return conv, PolyphaseConvTranspose1d(conv)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("c_in", "out", "k", "s", "p", "output_padding", "length", "bias"), TRANSPOSED)
def test_polyphase_transposed_conv_equals_reference(dtype, c_in, out, k, s, p, output_padding, length, bias):
    """PolyphaseConvTranspose1d is nn.ConvTranspose1d's function (float64 <= 1e-12, fp32 <= 1e-5): output y [B, O,
    L_out] with channels-last strides, a view of the phase conv's output starting p samples in."""
    torch.manual_seed(0)
    conv, fast = _transposed_pair(c_in, out, k, s, p, output_padding, bias, dtype)
    x = torch.randn(2, c_in, length, dtype=dtype)
    with torch.no_grad():
        y, ref = fast(x), conv(x)
    assert y.shape == ref.shape and y.dtype == dtype
    assert y.stride(1) == 1 and y.stride(2) == out and y.storage_offset() == p * out
    assert (y - ref).abs().max() <= (1e-12 if dtype == torch.float64 else 1e-5) * max(1.0, ref.abs().max())


@pytest.mark.parametrize("stage", sorted(PRESET_UPSAMPLERS))
def test_polyphase_transposed_conv_equals_every_preset_upsampler(stage):
    """Every shipped preset's upsamplers (gsv_v4's k=20 s=10 ... to BigVGAN's 1,536 channels), float64, from
    channels-last rows with a storage offset (as the engine's activations come) and from [B, C, T] strides."""
    c_in, out, k, s, p = PRESET_UPSAMPLERS[stage]
    torch.manual_seed(0)
    conv, fast = _transposed_pair(c_in, out, k, s, p, 0, True, torch.float64)
    rows = torch.randn(2, 13, c_in, dtype=torch.float64).transpose(1, 2)[..., 1:]  # channels-last, offset
    with torch.no_grad():
        for x in (rows, rows.contiguous()):
            y, ref = fast(x), conv(x)
            assert y.shape == ref.shape and y.stride(1) == 1
            assert (y - ref).abs().max() <= 1e-12 * max(1.0, ref.abs().max())


@pytest.mark.parametrize(("c_in", "out"), [(32, 16), (48, 24), (256, 128)])
def test_polyphase_output_feeds_the_fused_kernels_as_is(c_in, out):
    """The fp16 view (p O halfs into rows of Q s O) is channels-last rows with 16-byte aligned start and row strides:
    channels_last_rows passes it through and the fused resblock's block copies can read it."""
    from batchvoc.engines.fused_resblock import fits_block_copies
    from batchvoc.engines.triton_runtime import channels_last_rows

    conv = torch.nn.ConvTranspose1d(c_in, out, 4, 2, padding=1).half()
    x = torch.randn(2, 9, c_in, dtype=torch.float16).transpose(1, 2)
    with torch.no_grad():
        y = PolyphaseConvTranspose1d(conv)(x)
    assert y.storage_offset() == out and channels_last_rows(y) is y and fits_block_copies(y)


def test_preset_upsamplers_cover_the_shipped_geometries():
    """The sweep holds gsv_v4's, BigVGAN v2 24k's and HiFi-GAN V1's upsamplers (k, s, p)."""
    geometry = {name: [v[2:] for stage, v in PRESET_UPSAMPLERS.items() if stage.startswith(name + "/")]
                for name in ("gsv_v4", "bigvgan_v2_24khz_100band_256x", "hifigan_v1_universal")}  # fmt: skip
    assert geometry["gsv_v4"] == [(20, 10, 5), (12, 6, 3), (4, 2, 1), (4, 2, 1), (4, 2, 1)]
    assert geometry["bigvgan_v2_24khz_100band_256x"] == [(8, 4, 2), (8, 4, 2), *[(4, 2, 1)] * 4]
    assert geometry["hifigan_v1_universal"] == [(16, 8, 4), (16, 8, 4), (4, 2, 1), (4, 2, 1)]


def test_compiled_polyphase_reads_the_phase_conv_in_place():
    """Under Inductor the transposed conv is one forward convolution whose output the next op reads through the
    phase view: the same values as eager, no copy of the interleaved [B, O, Q s] buffer in between."""
    from torch._inductor.utils import run_and_get_code

    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose1d(16, 8, 8, 4, padding=2)
    fast = PolyphaseConvTranspose1d(conv)
    x = torch.randn(2, 24, 16).transpose(1, 2)  # channels-last rows, as the engine's activations

    def step(x):
        return torch.nn.functional.leaky_relu(fast(x), 0.1)

    torch._dynamo.reset()
    with torch.no_grad(), torch._inductor.config.patch(fx_graph_cache=False):
        out, code = run_and_get_code(torch.compile(step, fullgraph=True), x)
        ref = torch.nn.functional.leaky_relu(conv(x), 0.1)
    assert out.shape == ref.shape and (out - ref).abs().max() <= 1e-5
    source = "\n".join(code)
    assert re.findall(r"convolution\(.*transposed=(\w+)", source) == ["False"]
    assert re.findall(r"empty_strided\w*\(\((2, 8, [\d, ]+)\)", source) == ["2, 8, 96"]  # the output alone
