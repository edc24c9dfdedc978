"""Chunk-and-pack: bookkeeping with a transparent fake engine, then stitched == whole on real architectures."""

from __future__ import annotations

import importlib
import math
import time

import numpy as np
import pytest
import torch

from batchvoc.batching import PackedBatch, Stitcher, pack, vocode, window_for
from batchvoc.models.presets import PRESETS

SILENCE = np.float32(math.log(1e-5))


@pytest.fixture(autouse=True, scope="module")
def flush_denormals():
    """Random-weight models drift into denormal floats on CPU, which are 5-10x slower; flush them to zero."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


def echo_engine(hop: int):
    """A fake engine whose audio is mel row 0 repeated hop times per frame: stitching must give it back exactly."""

    def run(mel: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return mel[:, 0, :].repeat_interleave(hop, dim=-1)

    return run


def utterances(lengths, n_mels=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(f"u{i}", rng.standard_normal((n_mels, n)).astype(np.float32)) for i, n in enumerate(lengths)]


# --- bookkeeping ---------------------------------------------------------------------------------------------


def test_window_for_makes_round_windows():
    assert window_for(12, 512) == 512 - 24
    assert window_for(13, 500, 32) == 512 - 26
    assert window_for(40, 16, 32) + 80 == 128  # 2C + multiple = 112, rounded up to 128
    with pytest.raises(ValueError):
        window_for(-1)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_echo_roundtrip_in_order(batch):
    hop, window, context = 4, 10, 3
    items = utterances([0, 1, 9, 10, 11, 25, 0, 7, 40, 0])
    out = list(vocode(echo_engine(hop), items, window, context, batch, SILENCE, hop))
    assert [k for k, _ in out] == [k for k, _ in items]
    for (_, mel), (_, audio) in zip(items, out, strict=True):
        assert audio.dtype == np.float32 and audio.shape == (mel.shape[1] * hop,)
        np.testing.assert_array_equal(audio, np.repeat(mel[0], hop))


def test_windows_hold_context_silence_and_valid_spans():
    window, context = 5, 2
    ((key, mel),) = utterances([12])
    batches = list(pack([(key, mel)], window, context, 4, SILENCE))
    assert len(batches) == 1
    b = batches[0]
    assert b.mel.shape == (4, 3, 9) and b.mel.dtype == torch.float32
    assert b.valid.dtype == torch.int64
    assert [(p.row, p.start, p.frames, p.last) for p in b.pieces] == [
        (0, 0, 5, False),
        (1, 5, 5, False),
        (2, 10, 2, True),
    ]
    assert b.valid.tolist() == [[2, 9], [0, 9], [0, 4], [0, 9]]  # last row: silence filler, all "valid"
    np.testing.assert_array_equal(b.mel[0, :, :2], SILENCE)  # before the utterance: silence
    np.testing.assert_array_equal(b.mel[0, :, 2:], mel[:, :7])
    np.testing.assert_array_equal(b.mel[1], mel[:, 3:12])  # context taken from the neighbours
    np.testing.assert_array_equal(b.mel[2, :, :4], mel[:, 8:12])
    np.testing.assert_array_equal(b.mel[2, :, 4:], SILENCE)  # past the end: silence, not zeros
    np.testing.assert_array_equal(b.mel[3], SILENCE)


def test_every_batch_has_the_same_shape_and_float16_input_is_accepted():
    items = [(k, m.astype(np.float16)) for k, m in utterances([3, 50, 7])]
    shapes = {tuple(b.mel.shape) for b in pack(items, 8, 4, 5, SILENCE)}
    assert shapes == {(5, 3, 16)}


def test_pack_is_lazy():
    consumed = []

    def items():
        for key, mel in utterances([20] * 100):
            consumed.append(key)
            yield key, mel

    stream = pack(items(), window=10, context=2, batch=4, silence=SILENCE)
    first = next(stream)
    assert isinstance(first, PackedBatch) and first.rows_used == 4
    assert len(consumed) <= 3  # 2 windows per utterance: the first batch needs 2 utterances (+1 look-ahead)


def test_stitcher_returns_utterances_as_they_complete():
    hop = 2
    items = utterances([25, 3])
    stitcher = Stitcher(hop)
    engine = echo_engine(hop)
    done = []
    for b in pack(items, 10, 1, 2, SILENCE):
        done.append([k for k, _ in stitcher.feed(b, engine(b.mel, b.valid))])
    assert done == [[], ["u0", "u1"]]
    assert not stitcher.pending


def test_only_empty_utterances_and_bad_shapes():
    out = list(vocode(echo_engine(2), utterances([0, 0]), 4, 1, 2, SILENCE, 2))
    assert [(k, a.shape) for k, a in out] == [("u0", (0,)), ("u1", (0,))]
    with pytest.raises(ValueError, match="expected"):
        list(pack([("a", np.zeros((3, 5))), ("b", np.zeros((4, 5)))], 4, 1, 2, SILENCE))


# --- stitched == whole on the real architectures ------------------------------------------------------------


def families_present():
    """Presets whose family module imports now (bigvgan joins once batchvoc/models/bigvgan.py lands)."""
    from batchvoc.models import FAMILIES

    names = []
    for name, preset in sorted(PRESETS.items()):
        try:
            importlib.import_module(FAMILIES[preset.family])
        except ImportError:
            continue
        names.append(name)
    return names


def lively(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights with unit-gain scale (std 1/sqrt(fan_in)), small biases.

    Upstream's init (N(0, 0.01)) leaves a nearly constant output dominated by biases, on which a wrong seam
    would barely move the error; these weights give a signal of std ~0.4 that every sample depends on.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                w = m.weight
                if isinstance(m, torch.nn.ConvTranspose1d):
                    fan_in = w.shape[0] * w.shape[2] / m.stride[0]
                else:
                    fan_in = w.shape[1] * w.shape[2]
                w.copy_(torch.randn(w.shape, generator=gen) / math.sqrt(fan_in))
                if m.bias is not None:
                    m.bias.copy_(0.01 * torch.randn(m.bias.shape, generator=gen))
    return model.eval()


def make_model(name: str, reduced: int = 1, dtype: torch.dtype = torch.float32):
    """A lively random-weight model of preset `name` with `reduced` times fewer channels (same rates, kernels and
    dilations, hence the same receptive field)."""
    from batchvoc.models import build_model

    preset = PRESETS[name]
    hparams = dict(preset.hparams)
    hparams["upsample_initial_channel"] = hparams["upsample_initial_channel"] // reduced
    return lively(build_model(preset, hparams)).to(dtype), preset


def stitched_vs_whole(model, preset, frames: int, context: int, length: int = 128, batch: int = 2, seed: int = 0):
    """(rel L2, max abs error / peak) of chunk-and-pack against the whole utterance in one forward.

    Both run in the model's dtype from the same float32 mel.
    """
    gen = torch.Generator().manual_seed(seed)
    mel = 2 * torch.randn(preset.n_mels, frames, generator=gen) - 5
    window = window_for(context, length)
    dtype = next(model.parameters()).dtype

    def engine(m, v):
        return model(m.to(dtype), v).reshape(m.shape[0], -1)

    with torch.inference_mode():
        whole = model(mel[None].to(dtype))[0, 0].numpy()
        ((_, stitched),) = vocode(
            engine, [("x", mel.numpy())], window, context, batch, preset.silence, preset.hop_length
        )
    assert stitched.shape == whole.shape == (frames * preset.hop_length,)
    diff = stitched - whole
    return float(np.linalg.norm(diff) / np.linalg.norm(whole)), float(np.abs(diff).max() / np.abs(whole).max())


def distinct_architectures():
    """One preset per distinct architecture (presets differing only in n_mels / front end share one)."""
    seen, names = set(), []
    for name in families_present():
        hp = {k: v for k, v in PRESETS[name].hparams.items() if k != "n_mels"}
        key = (PRESETS[name].family, repr(sorted(hp.items())))
        if key not in seen:
            seen.add(key)
            names.append(name)
    return names


V3 = "bigvgan_v2_24khz_100band_256x"


def contract_cases():
    """(preset, frames, channel reduction). HiFi-GAN: 37 and 500 frames at full size, 3001 with 8x fewer channels.
    BigVGAN (1536 channels: ~15 s for 37 frames at full size on 2 CPU cores): 8x fewer channels, 37 frames for
    each distinct architecture, 500 for GPT-SoVITS v3's preset."""
    cases = []
    for name in distinct_architectures():
        if PRESETS[name].family == "hifigan":
            cases += [(name, 37, 1), (name, 500, 1), (name, 3001, 8)]
        else:
            cases.append((name, 37, 8))
    if V3 in families_present():
        cases.append((V3, 500, 8))
    return cases


# Worst sample error / peak allowed in fp32. With lively weights BigVGAN's fp32 rounding alone reaches ~1e-3 of
# the peak (float64 agrees to ~1e-9); a context half the receptive field gives errors of 0.02-0.2.
FP32_WORST = {"hifigan": 1e-4, "bigvgan": 5e-3}


@pytest.mark.slow
@pytest.mark.parametrize("name,frames,reduced", contract_cases())
def test_stitched_equals_whole(name, frames, reduced):
    """Chunk-and-pack fp32 == whole-utterance eager fp32 (rel L2 <= 1e-4), context = model.receptive_field().

    Random-weight models of each preset's architecture (presets that differ only in n_mels share one), full size
    or with fewer channels (same receptive field); windows of 128 frames, so 500 frames cross several seams and
    3001 frames dozens.
    """
    model, preset = make_model(name, reduced)
    start = time.perf_counter()
    rel, worst = stitched_vs_whole(model, preset, frames, model.receptive_field())
    print(f"{name} {frames} reduced={reduced}: rel L2 {rel:.1e} max {worst:.1e} {time.perf_counter() - start:.1f} s")
    assert rel <= 1e-4
    assert worst <= FP32_WORST[preset.family]


def hifigan_architectures():
    return [n for n in distinct_architectures() if PRESETS[n].family == "hifigan"]


@pytest.mark.parametrize("name", hifigan_architectures())
def test_stitched_is_exact_in_float64(name):
    """In float64 the stitched output equals the whole one to the float32 output rounding (~3e-8 of the peak).

    16x fewer channels, 150 frames in windows of 96 frames: 2-3 seams. (BigVGAN is exact too in float64, to
    ~1e-9 rel L2, but its float64 CPU path takes ~20-80 s, so it is not run here.)
    """
    model, preset = make_model(name, 16, torch.float64)
    rel, worst = stitched_vs_whole(model, preset, 150, model.receptive_field(), length=96, batch=1)
    assert worst <= 1e-6 and rel <= 1e-6


@pytest.mark.parametrize("name", distinct_architectures())
def test_short_context_is_caught(name):
    """The checks above fail when the context is half the receptive field: they can fail."""
    if PRESETS[name].family == "hifigan":
        model, preset = make_model(name, 16, torch.float64)
        rel, worst = stitched_vs_whole(model, preset, 150, model.receptive_field() // 2, length=96, batch=1)
        assert worst > 1e-6
    else:
        model, preset = make_model(name, 8)
        rel, worst = stitched_vs_whole(model, preset, 80, model.receptive_field() // 2, length=96, batch=1)
        assert worst > FP32_WORST[preset.family]
