"""The device stream: chunk-and-pack through an engine and back, in order and streaming; stitched == whole on the
real architectures; failed batches fail only their utterances."""

from __future__ import annotations

import importlib
import math
import time

import numpy as np
import pytest
import torch

from batchvoc import stream as stream_module
from batchvoc.chunking import ChunkPlan, chunk_frames_for, pack
from batchvoc.models.presets import PRESETS
from batchvoc.stream import VocoderStream, _PinnedAudio

SILENCE = np.float32(math.log(1e-5))


@pytest.fixture(autouse=True, scope="module")
def flush_denormals():
    """Random-weight models drift into denormal floats on CPU, which are 5-10x slower; flush them to zero."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


def echo_engine(hop: int):
    """A fake engine whose audio is mel row 0 repeated hop times per frame: stitching must give it back exactly."""

    def run(mel: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
        return mel[:, 0, :].repeat_interleave(hop, dim=-1)

    return run


def utterances(lengths, n_mels=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(f"u{i}", rng.standard_normal((n_mels, n)).astype(np.float32)) for i, n in enumerate(lengths)]


def vocode(engine, items, chunk, context, batch, floor, hop, gap=None):
    """(key, audio) pairs from a VocoderStream without the round trip."""
    stream = VocoderStream(engine, ChunkPlan(chunk, context, batch, float(floor), hop, gap), sample_rate=100)
    for done in stream.vocode(items):
        assert done.error is None, done.error
        yield done.key, done.audio


def test_vocode_streams():
    """vocode hands back the first utterances after two batches of many short ones (one batch stays in flight
    while the next is launched), having read one item ahead."""
    consumed = []

    def items():
        for key, mel in utterances([5] * 1000):
            consumed.append(key)
            yield key, mel

    stream = vocode(echo_engine(2), items(), chunk=12, context=2, batch=2, floor=SILENCE, hop=2)
    key, audio = next(stream)
    assert key == "u0" and audio.shape == (10,)
    assert len(consumed) <= 9  # a row of 16 frames holds 2 (5 + gap 2 + 5): 2 batches of 2 rows, +1 look-ahead
    assert [k for k, _ in stream][-1] == "u999"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_batches_read_their_own_uploads():
    """On a GPU each batch's mel goes up on a copy stream while the batch before computes: an engine that spins
    before reading its input still reads its own batch (the compute stream waits for the copies), and no batch
    reads memory a later upload reused. The echo engine's audio comes back exact."""
    hop = 4

    def slow_echo(mel: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
        torch.cuda._sleep(2_000_000)  # ~1 ms: the next batch's upload is queued meanwhile
        return mel[:, 0, :].repeat_interleave(hop, dim=-1)

    items = utterances([37, 5, 80, 12, 64, 3, 50, 29] * 4, seed=3)
    stream = VocoderStream(slow_echo, ChunkPlan(16, 0, 2, float(SILENCE), hop), sample_rate=100, device="cuda")
    got = {done.key: done.audio for done in stream.vocode(items)}
    for key, mel in items:
        assert np.array_equal(got[key], np.repeat(mel[0], hop)), key


def test_pinned_audio_admits_up_to_its_limit_and_takes_back_what_is_dropped():
    """The count of page-locked audio handed out: buffers past the limit are refused (the stream copies those),
    and a buffer's bytes come back once the last array viewing it is gone."""
    pinned = _PinnedAudio(limit=3 * 400)
    buffers = [torch.zeros(100).numpy() for _ in range(4)]  # 400 bytes each, as the stream hands them out
    assert [pinned.admit(b) for b in buffers] == [True, True, True, False]
    assert pinned.held == 1200
    view = buffers[0][10:20]  # an utterance's view keeps its batch's buffer alive
    del buffers[0]
    assert pinned.held == 1200
    del view
    assert pinned.held == 800 and pinned.admit(buffers[-1])
    buffers.clear()
    assert pinned.held == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_audio_held_past_the_pinned_limit_is_copied_and_stays_exact():
    """A caller keeping every utterance: batches past the limit come back as copies in ordinary memory, the page-
    locked bytes handed out never pass the limit, and every utterance (views and copies) stays exact after the
    later batches' copies."""
    hop = 4
    items = utterances([37, 5, 80, 12, 64, 3, 50, 29] * 4, seed=5)
    one_batch = 2 * 16 * hop * 4  # [batch 2, 16 frames x hop] float32
    limit, stream_module._PINNED_AUDIO.limit = stream_module._PINNED_AUDIO.limit, 3 * one_batch
    try:
        stream = VocoderStream(echo_engine(hop), ChunkPlan(16, 0, 2, float(SILENCE), hop), 100, device="cuda")
        got = {}
        for done in stream.vocode(items):
            got[done.key] = done.audio
            assert stream_module._PINNED_AUDIO.held <= 3 * one_batch
    finally:
        stream_module._PINNED_AUDIO.limit = limit
    for key, mel in items:
        assert np.array_equal(got[key], np.repeat(mel[0], hop)), key


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


def packed_vs_whole(model, preset, lengths, context: int, length: int = 128, batch: int = 2, gap=None, seed=0):
    """Chunk-and-pack of utterances of `lengths` frames against each utterance alone in one forward.

    Returns ([(rel L2, max abs error / peak) per non-empty utterance], the packed batches). Both run in the
    model's dtype from the same float32 mels.
    """
    gen = torch.Generator().manual_seed(seed)
    items = [(i, (2 * torch.randn(preset.n_mels, n, generator=gen) - 5).numpy()) for i, n in enumerate(lengths)]
    window = chunk_frames_for(context, length)
    dtype = next(model.parameters()).dtype

    def engine(m, bounds):
        return model(m.to(dtype), bounds).reshape(m.shape[0], -1)

    errors = []
    with torch.inference_mode():
        out = list(vocode(engine, items, window, context, batch, preset.silence, preset.hop_length, gap))
        assert [k for k, _ in out] == list(range(len(lengths)))
        for (_, mel), (_, stitched) in zip(items, out, strict=True):
            assert stitched.shape == (mel.shape[1] * preset.hop_length,)
            if mel.shape[1]:
                whole = model(torch.from_numpy(mel)[None].to(dtype))[0, 0].numpy()
                diff = stitched - whole
                errors.append((float(np.linalg.norm(diff) / np.linalg.norm(whole)),
                               float(np.abs(diff).max() / np.abs(whole).max())))  # fmt: skip
    return errors, list(pack(items, window, context, batch, preset.silence, gap))


def shared_rows(batches) -> int:
    """Rows holding pieces of two or more utterances."""
    return sum(len({p.index for p in b.pieces if p.row == r}) > 1 for b in batches for r in range(b.mel.shape[0]))


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
SHORT = [3, 37, 5, 1, 64, 0, 7, 20]  # several per 128-frame row, some cut across rows


def contract_cases():
    """(preset, lengths, channel reduction), each packed into rows of 128 frames. HiFi-GAN: short ones and 500
    frames at full size, short ones and 3001 frames with 8x fewer channels. BigVGAN (1536 channels: ~15 s for 37
    frames at full size on 2 CPU cores): 8x fewer channels, short ones for each distinct architecture, with 500
    frames for GPT-SoVITS v3's preset."""
    cases = []
    for name in distinct_architectures():
        if PRESETS[name].family == "hifigan":
            cases += [(name, SHORT[:3] + [500] + SHORT[3:], 1), (name, SHORT[:3] + [3001] + SHORT[3:], 8)]
        else:
            cases.append((name, SHORT, 8))
    if V3 in families_present():
        cases.append((V3, SHORT[:3] + [500] + SHORT[3:], 8))
    return cases


# Worst sample error / peak allowed in fp32. With lively weights BigVGAN's fp32 rounding alone reaches ~1e-3 of
# the peak (float64 agrees to ~1e-9); a context half the receptive field gives errors of 0.02-0.2.
FP32_WORST = {"hifigan": 1e-4, "bigvgan": 5e-3}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,lengths,reduced", contract_cases(), ids=lambda v: f"{max(v)}" if isinstance(v, list) else None
)
def test_packed_equals_whole(name, lengths, reduced):
    """Packed fp32 == each utterance alone in eager fp32 (rel L2 <= 1e-4), context = gap = model.receptive_field().

    Random-weight models of each preset's architecture (presets that differ only in n_mels share one), full size
    or with fewer channels (same receptive field); rows of 128 frames, so short utterances share rows, 500 frames
    cross several cuts and 3001 frames dozens.
    """
    model, preset = make_model(name, reduced)
    start = time.perf_counter()
    errors, batches = packed_vs_whole(model, preset, lengths, model.receptive_field())
    rel, worst = max(e[0] for e in errors), max(e[1] for e in errors)
    print(f"{name} {lengths} reduced={reduced}: rel L2 {rel:.1e} max {worst:.1e} {time.perf_counter() - start:.1f} s")
    assert shared_rows(batches) >= 1
    assert rel <= 1e-4
    assert worst <= FP32_WORST[preset.family]


def hifigan_architectures():
    return [n for n in distinct_architectures() if PRESETS[n].family == "hifigan"]


MIXED = [3, 37, 5, 150, 1, 64, 7, 20, 2]


@pytest.mark.parametrize("name", hifigan_architectures())
def test_packed_is_exact_in_float64(name):
    """In float64 each packed utterance equals its whole output to the float32 output rounding (~3e-8 of the peak).

    16x fewer channels, rows of 96 frames: neighbours 12-13 frames apart, 150 frames cut 2-3 times. (BigVGAN is
    exact too in float64, to ~1e-9 rel L2, but its float64 CPU path takes ~20-80 s, so it is not run here.)
    """
    model, preset = make_model(name, 16, torch.float64)
    errors, batches = packed_vs_whole(model, preset, MIXED, model.receptive_field(), length=96)
    assert shared_rows(batches) >= 3
    assert max(worst for _, worst in errors) <= 1e-6


@pytest.mark.parametrize("name", distinct_architectures())
def test_short_context_is_caught(name):
    """The checks above fail when the context is half the receptive field: they can fail. (150 frames in rows of
    96: cut twice; an utterance that fits in one row needs no context at all.)"""
    if PRESETS[name].family == "hifigan":
        model, preset = make_model(name, 16, torch.float64)
        errors, _ = packed_vs_whole(model, preset, [150], model.receptive_field() // 2, length=96, batch=1)
        assert errors[0][1] > 1e-6
    else:
        model, preset = make_model(name, 8)
        errors, _ = packed_vs_whole(model, preset, [150], model.receptive_field() // 2, length=96, batch=1)
        assert errors[0][1] > FP32_WORST[preset.family]


def widest_layer(preset) -> int:
    """Frames that the widest single layer reaches on each side: conv_pre (kernel 7) at 1 sample per frame, or
    the first stage's widest residual conv (kernel 11, dilation 5: 25 samples) at upsample_rates[0] samples per
    frame."""
    hp = preset.hparams
    reach = max(d * (k - 1) // 2 for k, ds in zip(hp["resblock_kernel_sizes"], hp["resblock_dilation_sizes"],
                                                   strict=True) for d in ds)  # fmt: skip
    return max(3, math.ceil(reach / hp["upsample_rates"][0]))


@pytest.mark.parametrize("name", distinct_architectures())
def test_gap_threshold_is_the_widest_single_layer(name):
    """Utterances sharing a row must be `gap` frames apart, and the threshold is the widest single layer's reach
    (3-7 frames), not the receptive field C (12-38): Span masks before every layer, so an utterance never sees
    its neighbour's values, only its own padding, as long as no single layer reaches across the gap (its
    half of the gap, for BigVGAN's replicate-padded filters, which is why gap frames go to the nearer side).
    One frame less and packing is wrong: the negative control for test_packed_equals_whole's gap = C.
    """
    gap = widest_layer(PRESETS[name])
    if PRESETS[name].family == "hifigan":
        model, preset = make_model(name, 16, torch.float64)
        limit = 1e-6
    else:
        model, preset = make_model(name, 16)
        limit = FP32_WORST["bigvgan"]
    context = model.receptive_field()
    assert gap < context
    errors, batches = packed_vs_whole(model, preset, SHORT, context, batch=1, gap=gap)
    assert shared_rows(batches) >= 1 and max(worst for _, worst in errors) <= limit
    errors, _ = packed_vs_whole(model, preset, SHORT, context, batch=1, gap=gap - 1)
    assert max(worst for _, worst in errors) > 100 * limit


def test_progress_counts_each_batch_and_packing_efficiency():
    seconds = []
    stream = VocoderStream(echo_engine(2), ChunkPlan(12, 2, 2, float(SILENCE), 2), sample_rate=100)
    items = utterances([5, 30, 7])
    out = list(stream.vocode(items, progress=seconds.append))
    assert [s.key for s in out] == ["u0", "u1", "u2"]
    assert len(seconds) == len(list(pack(items, 12, 2, 2, SILENCE))) and sum(seconds) == pytest.approx(42 * 2 / 100)
    assert 0 < stream.packing_efficiency < 1
    # check values: the clipped count is the samples at or past the largest 16-bit PCM code, 1 - 2**-15 (this
    # echo's audio is the mel itself)
    assert all(s.sums.shape == (5,) and s.sums[0] == np.count_nonzero(np.abs(s.audio) >= 1 - 2**-15) for s in out)


def test_a_failing_batch_fails_only_its_utterances():
    """An engine that raises on one batch: the utterances with a piece there get the reason, the rest are exact;
    three failures in a row mean the device is broken and the stream raises."""
    calls = []

    def flaky(mel, bounds):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("CUDA out of memory (simulated by this test's own engine)")
        return mel[:, 0, :].repeat_interleave(2, dim=-1)

    items = utterances([5, 30, 7, 9, 40, 3], seed=1)
    stream = VocoderStream(flaky, ChunkPlan(12, 2, 2, float(SILENCE), 2), sample_rate=100)
    out = list(stream.vocode(items))
    failed = {p.index for p in list(pack(items, 12, 2, 2, SILENCE))[1].pieces}
    assert failed and len(failed) < len(items)
    for s, (_, mel) in zip(out, items, strict=True):
        if s.index in failed:
            assert "CUDA out of memory" in s.error and s.audio.size == 0
        else:
            assert s.error is None and np.array_equal(s.audio, np.repeat(mel[0], 2))

    def broken(mel, bounds):
        raise RuntimeError("device lost")

    with pytest.raises(RuntimeError, match="batches in a row failed"):
        list(VocoderStream(broken, ChunkPlan(12, 2, 1, float(SILENCE), 2), sample_rate=100).vocode(items))
