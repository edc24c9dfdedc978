"""BigVGAN v2: upstream's state-dict names, presets, exact windows, a tight receptive field, half-precision safety."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from batchvoc.checkpoint_config import READERS
from batchvoc.errors import ConfigError
from batchvoc.models.activations import SnakeBeta
from batchvoc.models.bigvgan import BigVGAN, build
from batchvoc.models.presets import get_preset

pytestmark = pytest.mark.usefixtures("one_thread")


V2_NAMES = [
    "bigvgan_v2_24khz_100band_256x",
    "bigvgan_v2_22khz_80band_256x",
    "bigvgan_v2_22khz_80band_fmax8k_256x",
    "bigvgan_v2_44khz_128band_256x",
    "bigvgan_v2_44khz_128band_512x",
]

# NVIDIA's configs/bigvgan_v2_24khz_100band_256x.json (= config.json on the Hub), training keys included.
CONFIG_24K = {
    "resblock": "1",
    "num_gpus": 0,
    "batch_size": 4,
    "learning_rate": 0.0001,
    "adam_b1": 0.8,
    "adam_b2": 0.99,
    "lr_decay": 0.9999996,
    "seed": 1234,
    "upsample_rates": [4, 4, 2, 2, 2, 2],
    "upsample_kernel_sizes": [8, 8, 4, 4, 4, 4],
    "upsample_initial_channel": 1536,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "use_tanh_at_final": False,
    "use_bias_at_final": False,
    "activation": "snakebeta",
    "snake_logscale": True,
    "use_cqtd_instead_of_mrd": True,
    "cqtd_filters": 128,
    "mpd_reshapes": [2, 3, 5, 7, 11],
    "use_spectral_norm": False,
    "segment_size": 65536,
    "num_mels": 100,
    "num_freq": 1025,
    "n_fft": 1024,
    "hop_size": 256,
    "win_size": 1024,
    "sampling_rate": 24000,
    "fmin": 0,
    "fmax": None,
    "fmax_for_loss": None,
    "dist_config": {"dist_backend": "nccl", "dist_url": "tcp://localhost:54321", "world_size": 1},
}

# The real 24 kHz geometry (so the receptive field is the preset's) with few channels: 32, 16, ... 1.
SMALL_24K = dict(get_preset("bigvgan_v2_24khz_100band_256x").hparams, n_mels=12, upsample_initial_channel=64)


def _randomise_snakes(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".alpha") or name.endswith(".beta"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def _small(seed: int = 0, **overrides) -> BigVGAN:
    torch.manual_seed(seed)
    model = BigVGAN.from_hparams(**{**SMALL_24K, **overrides}).eval()
    _randomise_snakes(model, seed)
    return model


def _upstream_names(n_stages: int, n_kernels: int) -> set[str]:
    """The keys NVIDIA's BigVGAN (resblock "1", snakebeta, no final bias) has once weight norm is removed."""
    act = ("act.alpha", "act.beta", "upsample.filter", "downsample.lowpass.filter")
    names = {"conv_pre.weight", "conv_pre.bias", "conv_post.weight"}
    names |= {f"activation_post.{a}" for a in act}
    for i in range(n_stages):
        names |= {f"ups.{i}.0.weight", f"ups.{i}.0.bias"}
    for n in range(n_stages * n_kernels):
        for m in range(3):
            for conv in ("convs1", "convs2"):
                names |= {f"resblocks.{n}.{conv}.{m}.weight", f"resblocks.{n}.{conv}.{m}.bias"}
        for m in range(6):
            names |= {f"resblocks.{n}.activations.{m}.{a}" for a in act}
    return names


def _meta_model(name: str) -> BigVGAN:
    with torch.device("meta"):  # full size, no memory, no init time
        return BigVGAN.from_preset(get_preset(name))


# --- presets and names --------------------------------------------------------------------------


def test_v2_presets_match_nvidias_configs():
    for name in V2_NAMES:
        p = get_preset(name)
        assert p.family == "bigvgan"
        assert p.hop_length == math.prod(p.hparams["upsample_rates"])
        assert p.n_mels == p.hparams["n_mels"] == p.front_end.n_mels
        fe = p.front_end
        assert (fe.sample_rate, fe.hop_length, fe.fmin, fe.clip, fe.magnitude_eps) == (
            p.sample_rate,
            p.hop_length,
            0,
            1e-5,
            1e-9,
        )
        assert fe.win_length == fe.n_fft
        assert p.silence == pytest.approx(math.log(1e-5))
        assert f"nvidia/{name}" in p.weights_hint
        assert p.hparams["use_tanh_at_final"] is False and p.hparams["use_bias_at_final"] is False
    p512 = get_preset("bigvgan_v2_44khz_128band_512x")
    assert (p512.hop_length, p512.front_end.n_fft, p512.front_end.win_length) == (512, 2048, 2048)
    assert p512.hparams["upsample_kernel_sizes"] == [16, 8, 4, 4, 4, 4]
    assert get_preset("bigvgan_v2_22khz_80band_fmax8k_256x").front_end.fmax == 8000
    assert get_preset("bigvgan_v2_22khz_80band_256x").front_end.fmax is None
    p24 = get_preset("bigvgan_v2_24khz_100band_256x")
    assert (p24.sample_rate, p24.hop_length, p24.n_mels, p24.front_end.n_fft) == (24000, 256, 100, 1024)
    assert "models--nvidia--bigvgan_v2_24khz_100band_256x" in p24.weights_hint


def test_hparams_from_nvidia_config():
    assert READERS["bigvgan"](CONFIG_24K) == get_preset("bigvgan_v2_24khz_100band_256x").hparams
    v1 = {k: v for k, v in CONFIG_24K.items() if k not in ("use_tanh_at_final", "use_bias_at_final")}
    v1["activation"] = "snake"
    h = READERS["bigvgan"](v1)  # v1 configs predate the flags: upstream's defaults are True
    assert h["use_tanh_at_final"] is True and h["use_bias_at_final"] is True and h["activation"] == "snake"
    with pytest.raises(ConfigError) as err:
        READERS["bigvgan"]({k: v for k, v in CONFIG_24K.items() if k != "upsample_rates"})
    assert err.value.key == "model.checkpoint" and "upsample_rates" in str(err.value)
    assert isinstance(build(READERS["bigvgan"](dict(CONFIG_24K, upsample_initial_channel=64))), BigVGAN)


def test_state_dict_keys_are_nvidias_for_the_24khz_model():
    model = _meta_model("bigvgan_v2_24khz_100band_256x")
    sd = model.state_dict()
    assert set(sd) == _upstream_names(6, 3)
    assert len(sd) == 667
    shapes = {
        "conv_pre.weight": (1536, 100, 7),
        "ups.0.0.weight": (1536, 768, 8),  # ConvTranspose1d: [in, out, k]
        "ups.5.0.weight": (48, 24, 4),
        "resblocks.0.convs1.0.weight": (768, 768, 3),
        "resblocks.2.convs1.2.weight": (768, 768, 11),
        "resblocks.17.convs2.2.bias": (24,),
        "resblocks.17.activations.5.act.beta": (24,),
        "resblocks.3.activations.0.upsample.filter": (1, 1, 12),
        "resblocks.3.activations.0.downsample.lowpass.filter": (1, 1, 12),
        "activation_post.act.alpha": (24,),
        "conv_post.weight": (1, 24, 7),
    }
    for key, shape in shapes.items():
        assert tuple(sd[key].shape) == shape, key
    assert sum(v.numel() for k, v in sd.items() if "filter" not in k) == pytest.approx(112.4e6, rel=0.01)


@pytest.mark.parametrize("name", V2_NAMES)
def test_every_preset_builds_with_upstream_names(name):
    model = _meta_model(name)
    sd = model.state_dict()
    assert set(sd) == _upstream_names(6, 3)
    assert sd["conv_pre.weight"].shape[1] == get_preset(name).n_mels
    assert sd["ups.0.0.weight"].shape[-1] == get_preset(name).hparams["upsample_kernel_sizes"][0]


def test_resblock2_snake_with_final_bias_names():
    model = BigVGAN.from_hparams(
        **{
            **SMALL_24K,
            "resblock": "2",
            "activation": "snake",
            "use_bias_at_final": True,
            "resblock_dilation_sizes": [[1, 3]] * 3,
        }
    )
    sd = model.state_dict()
    assert "conv_post.bias" in sd
    assert "resblocks.0.convs.1.weight" in sd and "resblocks.0.convs.2.weight" not in sd
    assert "resblocks.0.activations.1.act.alpha" in sd and "resblocks.0.activations.1.act.beta" not in sd
    assert not any("weight_g" in k or "weight_v" in k or "parametrizations" in k for k in sd)


def test_channels_halve_as_upstream_when_inexact():
    """Upstream: stage i maps initial // 2**i -> initial // 2**(i+1) channels, so 96 gives ... 6 -> 3 -> 1."""
    with torch.device("meta"):
        sd = BigVGAN.from_hparams(**{**SMALL_24K, "upsample_initial_channel": 96}).state_dict()
    assert tuple(sd["ups.4.0.weight"].shape) == (6, 3, 4)
    assert tuple(sd["ups.5.0.weight"].shape) == (3, 1, 4)
    assert tuple(sd["conv_post.weight"].shape) == (1, 1, 7)


# --- forward --------------------------------------------------------------------------------------


def test_forward_shape_and_final_bound():
    model = _small()
    mel = torch.randn(2, 12, 9) - 5
    seen = {}
    model.conv_post.register_forward_hook(lambda m, i, o: seen.__setitem__("z", o))
    with torch.no_grad():
        model.conv_post.weight.mul_(300.0)  # drive the pre-activation past +-1
        out = model(mel)
    assert out.shape == (2, 1, 9 * 256)
    assert seen["z"].abs().max() > 1.5
    assert torch.equal(out, seen["z"].clamp(-1, 1))  # use_tanh_at_final=False: clamp, as upstream
    model.use_tanh_at_final = True
    with torch.no_grad():
        assert torch.equal(model(mel), torch.tanh(seen["z"]))


def test_equals_nvidia_bigvgan_when_installed():
    """valid=None is upstream's forward, bit for bit (NVIDIA's `pip install bigvgan`; skipped without it)."""
    upstream = pytest.importorskip("bigvgan.bigvgan")
    from bigvgan.env import AttrDict

    config = dict(CONFIG_24K, num_mels=12, upsample_initial_channel=64)
    torch.manual_seed(0)
    ref = upstream.BigVGAN(AttrDict(copy.deepcopy(config)), use_cuda_kernel=False)
    ref.remove_weight_norm()
    ref.eval()
    _randomise_snakes(ref)
    ours = BigVGAN.from_hparams(**READERS["bigvgan"](config)).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    mel = torch.randn(2, 12, 23) - 4
    with torch.no_grad():
        assert torch.equal(ours(mel), ref(mel))


# --- receptive field --------------------------------------------------------------------------------


def test_receptive_field_per_preset():
    expected = {name: 38 for name in V2_NAMES}
    expected["bigvgan_v2_44khz_128band_512x"] = 21
    assert {name: _meta_model(name).receptive_field() for name in V2_NAMES} == expected
    assert _meta_model("bigvgan_v2_24khz_100band_256x").frame_reach() == (38, 38)


def _dependency(model: BigVGAN, frames: int, frame: int, dtype: torch.dtype) -> tuple[int, int]:
    """(before, after): input frames with a nonzero gradient for output frame `frame`."""
    model = model.to(dtype)
    mel = (torch.randn(1, model.conv_pre.in_channels, frames, dtype=dtype) - 4).requires_grad_(True)
    out = model(mel)[0, 0, frame * model.hop_length : (frame + 1) * model.hop_length]
    (out * torch.randn(out.shape, dtype=dtype)).sum().backward()
    touched = torch.nonzero(mel.grad.abs().sum(dim=(0, 1))).flatten()
    return frame - int(touched.min()), int(touched.max()) - frame


def test_receptive_field_bounds_the_gradient_24khz_geometry():
    model = _small()
    before, after = _dependency(model, 80, 40, torch.float32)
    rb, ra = model.frame_reach()
    assert before <= rb and after <= ra
    # float32 gradients of the outermost taps (products of ~30 small filter taps) underflow to exactly 0,
    # so the float32 reach is a few frames short of the exact one (see the float64 test below)
    assert before >= rb - 6 and after >= ra - 6


def test_receptive_field_is_exact_in_float64():
    torch.manual_seed(1)
    model = BigVGAN.from_hparams(
        **{**SMALL_24K, "upsample_rates": [4, 2], "upsample_kernel_sizes": [8, 4], "upsample_initial_channel": 8}
    ).eval()
    _randomise_snakes(model, 1)
    frames, frame = 2 * model.receptive_field() + 9, model.receptive_field() + 4
    assert _dependency(model, frames, frame, torch.float64) == model.frame_reach()


# --- exact windows -----------------------------------------------------------------------------------


def _window_batch(mel: torch.Tensor, starts: list[int], inner: int, context: int, fill: float):
    """Windows [start - context, start + inner + context) of one utterance, `fill` outside it, with valid spans."""
    n = mel.shape[-1]
    size = inner + 2 * context
    windows, valid = [], []
    for s in starts:
        w = torch.full((mel.shape[0], size), fill, dtype=mel.dtype)
        lo, hi = max(0, s - context), min(n, s + inner + context)
        w[:, lo - (s - context) : hi - (s - context)] = mel[:, lo:hi]
        windows.append(w)
        valid.append([lo - (s - context), hi - (s - context)])
    return torch.stack(windows), torch.tensor(valid, dtype=torch.long)


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # the 24 kHz v2 geometry: AMPBlock1, SnakeBeta, clamp, no final bias
        {
            "resblock": "2",
            "activation": "snake",
            "use_tanh_at_final": True,
            "use_bias_at_final": True,
            "upsample_rates": [4, 2, 2],
            "upsample_kernel_sizes": [8, 4, 4],
            "upsample_initial_channel": 16,
            "resblock_dilation_sizes": [[1, 3]] * 3,
        },
    ],
    ids=["v2_24khz", "ampblock2_snake"],
)
def test_windows_reproduce_the_whole_utterance(overrides):
    """Checked in float64: the claim is about the function, and float32 sums in a shape-dependent order."""
    model = _small(**overrides).double()
    hop, context, inner = model.hop_length, model.receptive_field(), 12
    torch.manual_seed(3)
    n = 56
    mel = torch.randn(12, n, dtype=torch.float64) * 1.5 - 5
    with torch.no_grad():
        whole = model(mel[None])[0, 0]
        # start, middle, end (runs past the utterance), and a whole short utterance shorter than the window
        starts = [0, 23, n - 10]
        windows, valid = _window_batch(mel, starts, inner, context, fill=4.0)  # not silence: the span must hide it
        short = mel[:, :11]
        short_whole = model(short[None])[0, 0]
        w_short, v_short = _window_batch(short, [0], inner, context, fill=4.0)
        out = model(torch.cat([windows, w_short]), torch.cat([valid, v_short]))[:, 0]
        assert out.shape == (4, (inner + 2 * context) * hop)
        for b, s in enumerate(starts):
            length = min(inner, n - s) * hop
            got = out[b, context * hop : context * hop + length]
            assert (got - whole[s * hop : s * hop + length]).abs().max() <= 1e-12, f"window at {s}"
        got = out[3, context * hop : context * hop + 11 * hop]
        assert (got - short_whole).abs().max() <= 1e-12
        # the check can fail: without the spans the padded edges leak into the output
        unmasked = model(windows[:1])[:, 0]
        assert (unmasked[0, context * hop : (context + inner) * hop] - whole[: inner * hop]).abs().max() > 1e-3


# --- half precision -----------------------------------------------------------------------------------


def _half_or_skip(model: BigVGAN, dtype: torch.dtype, mel: torch.Tensor) -> torch.Tensor:
    try:
        with torch.no_grad():
            return model.to(dtype)(mel.to(dtype))
    except (RuntimeError, NotImplementedError) as e:  # an op without a CPU kernel for this dtype
        if "not implemented" in str(e).lower() or "unsupported" in str(e).lower():
            pytest.skip(f"{dtype} on CPU: {e}")
        raise


SMALL_FAST = dict(upsample_rates=[4, 4, 2], upsample_kernel_sizes=[8, 8, 4], upsample_initial_channel=32)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_tiny_beta_stays_finite_in_half_precision(dtype):
    model = _small(**SMALL_FAST)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SnakeBeta):
                m.beta.fill_(math.log(1e-4))  # log scale: beta = 1e-4
    bad = []
    for name, m in model.named_modules():
        m.register_forward_hook(lambda mod, i, o, name=name: bad.append(name) if not torch.isfinite(o).all() else None)
    mel = torch.randn(1, 12, 12) - 5
    out = _half_or_skip(model, dtype, mel)
    assert out.dtype == dtype and out.shape == (1, 1, 12 * 32)
    assert bad == [], f"non-finite values after {bad[:3]}"
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_precision_is_close_to_fp32(dtype):
    model = _small(**SMALL_FAST)
    mel = torch.randn(1, 12, 16) - 5
    with torch.no_grad():
        ref = model(mel).double()
    out = _half_or_skip(model, dtype, mel).double()
    assert ref.abs().max() < 0.99  # not saturated: the comparison means something
    snr = 10 * math.log10(ref.pow(2).sum() / (out - ref).pow(2).sum())
    assert snr > 20, f"{dtype} vs fp32 SNR {snr:.1f} dB"


def test_two_utterances_packed_in_one_row():
    """Per-frame spans ([B, 2, T]): utterances sharing a row, a receptive field apart, each come out exact
    (float64, so summation order cannot blur the claim)."""
    model = _small().double()
    hop, rf = model.hop_length, model.receptive_field()
    torch.manual_seed(5)
    a, b = torch.randn(12, 9, dtype=torch.float64) - 5, torch.randn(12, 14, dtype=torch.float64) - 5
    row = torch.full((12, rf + 9 + rf + 14 + rf), 4.0, dtype=torch.float64)
    a0, b0 = rf, rf + 9 + rf
    row[:, a0 : a0 + 9], row[:, b0 : b0 + 14] = a, b
    per_frame = torch.empty(1, 2, row.shape[-1], dtype=torch.long)
    split = a0 + 9 + rf // 2  # gap frames belong to the nearest utterance
    per_frame[0, :, :split] = torch.tensor([a0, a0 + 9]).view(2, 1)
    per_frame[0, :, split:] = torch.tensor([b0, b0 + 14]).view(2, 1)
    with torch.no_grad():
        out = model(row[None], per_frame)[0, 0]
        for mel, start in ((a, a0), (b, b0)):
            whole = model(mel[None])[0, 0]
            assert (out[start * hop : start * hop + whole.numel()] - whole).abs().max() <= 1e-12


def test_load_vocoder_reads_an_nvidia_checkpoint_folder(tmp_path):
    """config.json + bigvgan_generator.pt as NVIDIA saves it during training ({"generator": ...}, weight_g/v)."""
    from batchvoc.models import load_vocoder
    from tests.checkpoints import weight_norm_state, write_nvidia_folder

    config = dict(CONFIG_24K, num_mels=12, upsample_initial_channel=64)
    source = _small(seed=7)
    state = weight_norm_state(source)
    assert "conv_pre.weight_g" in state and "ups.0.0.weight_v" in state and "conv_pre.weight" not in state
    write_nvidia_folder(source, config, tmp_path)
    model, preset = load_vocoder("bigvgan_v2_24khz_100band_256x", str(tmp_path))
    assert isinstance(model, BigVGAN) and preset.n_mels == 12 and preset.hop_length == 256
    mel = torch.randn(1, 12, 10) - 5
    with torch.no_grad():
        assert (model(mel) - source(mel)).abs().max() < 1e-5


def test_half_precision_stage_sum_does_not_overflow():
    """Three AMP blocks each returning ~40,000 sum to ~120,000, past fp16's 65,504; their mean is not, and the
    model accumulates the sum in float32 (upstream sums in the model's dtype and gets Inf)."""
    model = BigVGAN(n_mels=8, upsample_rates=[2], upsample_kernel_sizes=[4], upsample_initial_channel=16,
                    resblock_kernel_sizes=[3, 5, 7], resblock_dilation_sizes=[[1, 3, 5]] * 3).eval()  # fmt: skip
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("resblocks") and name.endswith("weight"):
                p.mul_(1e-3)  # small residual branches: each block returns about its input
        up = model.ups[0][0]
        up.weight.zero_()
        up.bias.fill_(40000.0)  # every stage input sample is 40,000
        mel = torch.zeros(1, 8, 20)
        ref = model(mel)
        half = model.half()(mel.half())
    assert torch.isfinite(half).all()
    assert (half.float() - ref).abs().max() <= 1e-3
