"""Engine-side rewrites (engines/layout.py): channels-last (1, k) 2-D convs, transposed convs as polyphase forward
convs, fused and polyphase anti-aliasing compute the reference model's function (fp32, <= 1e-5), with no span, a
[B, 2] span and a [B, 2, T] span."""

from __future__ import annotations

import re

import pytest
import torch

from batchvoc.engines import build_engine, layout
from batchvoc.engines.upsample_phases import PolyphaseConvTranspose1d
from batchvoc.models.bigvgan import BigVGAN
from batchvoc.models.hifigan import HiFiGAN

SMALL = dict(n_mels=20, upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4], upsample_initial_channel=32,
             resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]])  # fmt: skip


def _randomize(model):
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("alpha", "beta")):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _spans(rows: int, frames: int):
    per_row = torch.tensor([[3, frames], [0, frames - 10], [10, 20]])[:rows]
    per_frame = per_row.unsqueeze(-1).repeat(1, 1, frames)
    half = frames // 2
    per_frame[1, :, :half] = torch.tensor([0, half - 5]).view(2, 1)  # two utterances in row 1
    per_frame[1, :, half:] = torch.tensor([half + 2, frames]).view(2, 1)
    return [None, per_row, per_frame]


def assert_same_audio(model: torch.nn.Module, fast: torch.nn.Module) -> None:
    """fast's audio equals the reference model's (<= 1e-5 of its peak) on random mels [3, 20, 50], every span."""
    mel = 2 * torch.randn(3, 20, 50) - 5
    with torch.no_grad():
        for valid in _spans(3, 50):
            ref, out = model(mel, valid), fast(mel, valid)
            assert out.shape == ref.shape
            assert (out - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max())


@pytest.mark.parametrize("family", [HiFiGAN, BigVGAN])
@pytest.mark.parametrize(
    "rewrite",
    [("channels_last_2d", "conv", "conv"), ("ncl", "polyphase", "conv"), ("channels_last_2d", "polyphase", "conv"),
     ("ncl", "fused", "fused"), ("channels_last_2d", "fused", "fused"), ("channels_last_2d", "fused1", "fused"),
     ("ncl", "fused1g", "conv"), ("ncl", "fused1r", "conv"), ("ncl", "conv", "fused_wide"),
     ("channels_last_2d", "fused", "fused_wide")],
)  # fmt: skip
def test_rewrites_equal_reference(family, rewrite):
    torch.manual_seed(0)
    model = _randomize(family(**SMALL))
    fast = layout.apply(model, layout.Rewrites(*rewrite))
    assert_same_audio(model, fast)


def test_channels_last_2d_keeps_activations_channels_last():
    model = HiFiGAN(**{k: v for k, v in SMALL.items()}).eval()
    fast = layout.channels_last_2d(model)
    assert not any(isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)) for m in fast.modules())
    assert any(isinstance(m, torch.nn.Conv1d) for m in model.modules())  # the reference is untouched
    seen = []
    for m in fast.modules():
        if isinstance(m, layout.Conv1dAs2d):
            m.register_forward_hook(lambda mod, args, out: seen.append(out.stride()))
    assert all(isinstance(m, PolyphaseConvTranspose1d) for m in fast.ups)
    for m in fast.modules():
        if isinstance(m, PolyphaseConvTranspose1d):
            m.register_forward_hook(lambda mod, args, out: seen.append(out.stride()))
    with torch.no_grad():
        fast(torch.randn(2, 20, 30), torch.tensor([[0, 30], [2, 25]]))
    inner = seen[1:-1]  # conv_pre's input and conv_post's single channel aside
    assert inner and all(s[1] == 1 for s in inner)  # [B, C, T] with unit channel stride: memory [B, T, C]


def test_only_plain_transposed_convs_run_polyphase():
    """Grouped or dilated transposed convs keep the ConvTranspose2d form (and still compute the reference)."""
    model = torch.nn.Sequential(torch.nn.ConvTranspose1d(4, 4, 4, 2, padding=1, groups=2),
                                torch.nn.ConvTranspose1d(4, 4, 3, 2, padding=1, dilation=2),
                                torch.nn.ConvTranspose1d(4, 6, 4, 2, padding=1))  # fmt: skip
    fast = layout.channels_last_2d(model)
    assert [type(m) for m in fast] == [layout.ConvTranspose1dAs2d] * 2 + [PolyphaseConvTranspose1d]
    with pytest.raises(ValueError, match="groups 1 and dilation 1"):
        PolyphaseConvTranspose1d(model[0])
    x = torch.randn(2, 4, 9)
    with torch.no_grad():
        assert (fast(x) - model(x)).abs().max() <= 1e-5


PRESET_SHAPED = {
    "gsv_v4": (HiFiGAN, dict(upsample_rates=[10, 6, 2, 2, 2], upsample_kernel_sizes=[20, 12, 4, 4, 4])),
    "hifigan_v1": (HiFiGAN, dict(upsample_rates=[8, 8, 2, 2], upsample_kernel_sizes=[16, 16, 4, 4])),
    "bigvgan_v2_24k": (BigVGAN, dict(upsample_rates=[4, 4, 2, 2, 2, 2], upsample_kernel_sizes=[8, 8, 4, 4, 4, 4])),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRESET_SHAPED))
def test_channels_last_2d_equals_reference_with_preset_upsamplers(name):
    """Whole models with a shipped preset's upsamplers (narrow channels, one resblock kernel) under channels_last_2d:
    every transposed conv polyphase, the reference's audio (fp32, <= 1e-5 of its peak), every span."""
    family, rates = PRESET_SHAPED[name]
    torch.manual_seed(0)
    hparams = dict(n_mels=20, upsample_initial_channel=2 ** len(rates["upsample_rates"]) * 2,
                   resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3, 5]], **rates)  # fmt: skip
    model = _randomize(family(**hparams))
    fast = layout.channels_last_2d(model)
    assert sum(isinstance(m, PolyphaseConvTranspose1d) for m in fast.modules()) == len(rates["upsample_rates"])
    assert_same_audio(model, fast)


@pytest.mark.parametrize(
    ("ksize", "dilation", "length", "groups", "bias", "folded"),
    [(7, 3, 60, 1, True, True), (11, 5, 53, 1, True, True), (11, 3, 4, 1, False, True), (7, 2, 41, 4, True, True),
     (3, 5, 40, 1, True, False), (7, 1, 40, 1, True, False)],
)  # fmt: skip
def test_dilated_convs_run_folded(ksize, dilation, length, groups, bias, folded):
    """A same-padded dilated conv of >= FOLD_MIN_KSIZE taps runs as undilated convs of its phases (x padded to a
    multiple of the dilation where it is not one, lengths shorter than the dilation, groups, no bias): the same
    output as nn.Conv1d (fp32, <= 1e-5), channels-last rows."""
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(8, 8, ksize, dilation=dilation, padding=dilation * (ksize - 1) // 2, groups=groups,
                           bias=bias)  # fmt: skip
    fast = layout.Conv1dAs2d(conv)
    assert fast.fold == folded
    x = torch.randn(2, 8, length)
    with torch.no_grad():
        out, ref = fast(x), conv(x)
    assert out.shape == ref.shape and out.stride(1) == 1
    assert (out - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("channels_last", [True, False])
def test_phase_view_splits_time_for_any_strides(channels_last):
    """phase_view(x, d)[..., q, j] is sample q d + j, a view of x whether its rows are channels-last or not."""
    x = torch.randn(2, 13, 5) if channels_last else torch.randn(2, 5, 13)
    x = (x.transpose(1, 2) if channels_last else x).unsqueeze(2)[..., 1:]  # a storage offset too
    phases = layout.phase_view(x, 3)
    assert phases.data_ptr() == x.data_ptr()
    assert torch.equal(phases, x.squeeze(2).reshape(2, 5, 4, 3))


def test_compiled_fold_reads_its_input_as_laid_out():
    """Under Inductor, an activation feeding a folded conv is written once, in the channels-last strides eager mode
    gives it: no [B, C, T] buffer then copied to channels-last for the conv (what reshaping it cost on the GPU)."""
    from torch._inductor.utils import run_and_get_code

    torch.manual_seed(0)
    conv = torch.nn.Conv1d(16, 16, 7, dilation=3, padding=9)
    fast = layout.Conv1dAs2d(conv)
    x = torch.randn(2, 96, 16).transpose(1, 2)  # channels-last rows, as the engine's activations
    inside = torch.rand(1, 1, 96) > 0.1

    def step(x, inside):
        return fast(torch.where(inside, torch.nn.functional.leaky_relu(x, 0.1), 0.0))

    torch._dynamo.reset()
    with torch.no_grad(), torch._inductor.config.patch(fx_graph_cache=False):
        out, code = run_and_get_code(torch.compile(step, fullgraph=True), x, inside)
        ref = conv(torch.where(inside, torch.nn.functional.leaky_relu(x, 0.1), 0.0))
    assert (out - ref).abs().max() <= 1e-5
    # every buffer of the activation's size: [B, C, T] or [B, C, 1, T] with channel stride 1 (channels-last)
    sizes = re.findall(r"empty_strided\w*\(\((2, 16, (?:1, )?96)\), \((\d+), (\d+)", "\n".join(code))
    assert sizes and all(channel_stride == "1" for _, _, channel_stride in sizes), sizes


def test_only_same_padded_stride_one_convs_fold():
    assert not layout.Conv1dAs2d(torch.nn.Conv1d(4, 4, 7, dilation=3, padding=2)).fold  # output longer than x
    assert not layout.Conv1dAs2d(torch.nn.Conv1d(4, 4, 7, stride=2, dilation=3, padding=9)).fold


def test_polyphase_leaves_no_resampling_convs():
    model = BigVGAN(**SMALL).eval()
    fast = layout.polyphase_antialias(model)
    assert layout.has_antialias(model) and not layout.has_antialias(fast)


def test_choose_defaults():
    assert layout.choose(device="cpu", backend="inductor") == layout.Rewrites("ncl", "conv", "conv")
    fused = "fused" if layout.triton_available()[0] else "conv"  # on a GPU machine without triton: conv
    assert layout.choose(device="cuda", backend="inductor") == layout.Rewrites("channels_last_2d", fused, fused)
    assert layout.choose(device="cuda", backend="eager").none
    assert layout.choose(resblocks="fused", device="cpu").resblocks == "fused"
    with pytest.raises(ValueError, match="layout"):
        layout.choose("nhwc", device="cpu")
    with pytest.raises(ValueError, match="resblocks"):
        layout.choose(resblocks="triton", device="cpu")


def test_fused_wide_makes_the_wider_blocks_wide_and_keys_its_own_packages():
    from batchvoc.engines.fused_resblock import FusedResBlock
    from batchvoc.engines.wide_resblock import WideResBlock

    model = _randomize(HiFiGAN(**SMALL))  # stages of 16 and 8 channels
    chosen = layout.choose(resblocks="fused_wide", device="cpu", fused_max_channels=8)
    fast = layout.apply(model, chosen)
    kinds = [(type(m), m.channels) for m in fast.modules() if isinstance(m, FusedResBlock | WideResBlock)]
    assert kinds == [(WideResBlock, 16)] * 2 + [(FusedResBlock, 8)] * 2
    assert chosen.key() != layout.choose(resblocks="fused", device="cpu", fused_max_channels=8).key()
    assert "resblocks=fused_wide<=8ch" in layout.describe(chosen, model)
    assert_same_audio(model, fast)


@pytest.mark.parametrize(
    ("family", "rewrite"),
    [(HiFiGAN, ("channels_last_2d", "conv", "conv")), (HiFiGAN, ("channels_last_2d", "conv", "fused")),
     (HiFiGAN, ("channels_last_2d", "conv", "fused_wide")), (BigVGAN, ("channels_last_2d", "fused", "conv"))],
)  # fmt: skip
def test_compiled_channels_last_model_stores_nothing_it_never_reads(family, rewrite):
    """Inductor (its layout optimisation forced on, as the GPU engines have it) stores no activation twice: the
    (1, k) convs take channels-last views of their inputs (upsample_phases.rows_2d), not unsqueezed copies, which
    left a [B, C, T] store nothing read beside every activation feeding cuDNN."""
    from tests.engines.kernels import dead_stores

    fast = layout.apply(_randomize(family(**SMALL)), layout.Rewrites(*rewrite))
    with torch._inductor.config.patch(force_layout_optimization=True):
        assert dead_stores(lambda mel: fast(mel, None), (torch.randn(2, 20, 30),), "opaque") == []


def test_superrows_round_trip_through_choose_and_the_package_key():
    chosen = layout.choose(resblocks="fused", device="cpu", superrows="2")
    assert chosen.superrows == 2 and chosen.key()["superrows"] == 2
    assert chosen != layout.choose(resblocks="fused", device="cpu")
    assert "superrows" not in layout.choose(device="cpu").key()  # off: the keys made before the option stay
    assert layout.choose(device="cpu", superrows=0).superrows == 0
    with pytest.raises(ValueError, match="superrows must be 0 or more"):
        layout.choose(device="cpu", superrows=-1)


@pytest.mark.parametrize("where", ["ncl", "channels_last_2d"])
def test_superrows_rewrite_equals_reference(where):
    """Stages of 32 channels at 8 samples per frame and 16 at 16: super-rows divide both frame rates."""
    from batchvoc.engines.fused_resblock import FusedResBlock

    torch.manual_seed(0)
    model = HiFiGAN(n_mels=20, upsample_rates=[8, 2], upsample_kernel_sizes=[16, 4], upsample_initial_channel=64,
                    resblock_kernel_sizes=[3, 11], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]]).eval()  # fmt: skip
    rewrites = layout.Rewrites(where, "conv", "fused", superrows=2)
    fast = layout.apply(model, rewrites)
    samples = {conv.samples for m in fast.modules() if isinstance(m, FusedResBlock) for g in m.groups for conv in g}
    assert samples == {0, 4, 8} and "resblocks=fused<=64ch superrows<=2" in layout.describe(rewrites, model)
    assert_same_audio(model, fast)


def test_eager_engine_with_rewrites_equals_reference(tiny, batch):
    model, preset = tiny
    mel, valid = batch
    ref = build_engine(model, preset, backend="eager")(mel, valid)
    fast = build_engine(model, preset, backend="eager", layout="channels_last_2d", resblocks="fused")
    assert "layout=channels_last_2d resblocks=fused" in fast.describe()
    assert (fast(mel, valid) - ref).abs().max() <= 1e-5


@pytest.mark.slow
def test_inductor_with_rewrites_equals_eager_both_span_forms(tiny, batch, tmp_path):
    model, preset = tiny
    mel, valid = batch
    engine = build_engine(model, preset, backend="inductor", precision="fp32", shapes=[(2, 64)], cache_dir=tmp_path,
                          mode="default", layout="channels_last_2d")  # fmt: skip
    eager = build_engine(model, preset, backend="eager")
    per_frame = valid.unsqueeze(-1).repeat(1, 1, 64)
    per_frame[1, :, 32:] = torch.tensor([40, 64]).view(2, 1)
    per_frame[1, :, :32] = torch.tensor([0, 30]).view(2, 1)
    for v in (valid, per_frame):  # one graph serves both: [B, 2] becomes the per-frame form
        assert (engine(mel, v) - eager(mel, v)).abs().max() <= 1e-5


@pytest.mark.parametrize("family", [HiFiGAN, BigVGAN])
def test_fused_modules_take_channels_last_rows_in_a_trace(family):
    """Under channels_last_2d the fused modules hand their operators channels-last rows, also where x comes [B, C, T]
    strided: a trace picks the kernels from the strides it sees (Inductor's layout choices come after it)."""
    from batchvoc.engines.fused_antialias import FusedActivation1d
    from batchvoc.engines.fused_resblock import FusedResBlock
    from batchvoc.engines.ops import compiled_as
    from batchvoc.models.span import Span

    torch.manual_seed(0)
    model = _randomize(family(**SMALL))
    kinds = (FusedActivation1d, FusedResBlock)
    plain = layout.apply(model, layout.Rewrites("ncl", "fused", "fused"))
    assert not any(m.channels_last for m in plain.modules() if isinstance(m, kinds))
    fast = layout.apply(model, layout.Rewrites("channels_last_2d", "fused", "fused"))
    fused = next(m for m in fast.modules() if isinstance(m, kinds))
    assert fused.channels_last

    class Call(torch.nn.Module):
        def forward(self, x):
            return fused(x, Span(None), 1)

    channels = next(p for p in fused.parameters()).shape[0 if isinstance(fused, FusedActivation1d) else 1]
    x = torch.randn(2, channels, 40)  # [B, C, T] strides
    with torch.no_grad(), compiled_as("opaque"):
        exported = torch.export.export(Call(), (x,), strict=False)
    calls = [n for n in exported.graph.nodes if str(n.target).startswith("batchvoc.")]
    assert calls and all(n.args[0].meta["val"].stride(1) == 1 for n in calls)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), Call()(x), rtol=0, atol=0)
