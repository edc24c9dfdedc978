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


def test_rows_hold_several_utterances_cut_pieces_and_per_frame_spans():
    """The tape layout, frame by frame: L = 12, C = 2, gap = C."""
    window, context = 8, 2
    items = utterances([3, 20, 1, 0, 5])
    mels = [m for _, m in items]
    first, second = list(pack(items, window, context, 3, SILENCE))
    assert first.mel.shape == (3, 3, 12) and first.mel.dtype == torch.float32
    assert first.valid.shape == (3, 2, 12) and first.valid.dtype == torch.int64
    # (index, row, column, start, frames, last)
    assert [(p.index, p.row, p.column, p.start, p.frames, p.last) for p in first.pieces] == [
        (0, 0, 0, 0, 3, True),  # u0 at the row start: its true edge, no context
        (1, 0, 5, 0, 5, False),  # u1 after a gap of C; cut: 5 frames + C frames of context after
        (1, 1, 2, 5, 8, False),  # whole row: C context, W centre frames, C context
        (1, 2, 2, 13, 7, True),  # C context, the rest, up to its true end
        (2, 2, 11, 0, 1, True),  # u2 after a gap of C
    ]
    assert [(p.index, p.row, p.frames, p.last) for p in second.pieces] == [(3, None, 0, True), (4, 0, 5, True)]
    assert first.real_frames == 3 + 20 + 1 and first.rows_used == 3 and first.fill == 24 / 36
    assert second.real_frames == 5 and second.rows_used == 1

    def bounds(b, row):
        return [tuple(v) for v in b.valid[row].T.tolist()]

    # gap frames belong to the nearer segment (ties: the left one); the tail to the last one
    assert bounds(first, 0) == [(0, 3)] * 4 + [(5, 12)] * 8
    assert bounds(first, 1) == [(0, 12)] * 12
    assert bounds(first, 2) == [(0, 9)] * 10 + [(11, 12)] * 2
    assert bounds(second, 0) == [(0, 5)] * 12
    assert bounds(second, 1) == bounds(second, 2) == [(0, 12)] * 12  # filler rows: all "valid"
    np.testing.assert_array_equal(first.mel[0, :, :3], mels[0])
    np.testing.assert_array_equal(first.mel[0, :, 3:5], SILENCE)  # gaps: silence, not zeros
    np.testing.assert_array_equal(first.mel[0, :, 5:], mels[1][:, :7])
    np.testing.assert_array_equal(first.mel[1], mels[1][:, 3:15])  # context from both neighbours
    np.testing.assert_array_equal(first.mel[2, :, :9], mels[1][:, 11:])
    np.testing.assert_array_equal(first.mel[2, :, 9:11], SILENCE)
    np.testing.assert_array_equal(first.mel[2, :, 11:], mels[2])
    np.testing.assert_array_equal(second.mel[0, :, :5], mels[4])
    np.testing.assert_array_equal(second.mel[0, :, 5:], SILENCE)
    np.testing.assert_array_equal(second.mel[1:], SILENCE)


def check_layout(batches, items, context: int, gap: int, silence=SILENCE):
    """Every invariant exactness rests on, for any packing: pieces carry their utterance's frames with exactly
    min(C, frames available) of real context on each side (none past a true edge), segments sharing a row are
    at least `gap` apart, each frame's bounds are its segment or, outside every segment, the nearest one, and
    every frame outside the segments is silence."""
    mels = [m for _, m in items]
    placed = [0] * len(items)
    for b in batches:
        rows, _, length = b.mel.shape
        assert b.valid.shape == (rows, 2, length)
        valid, mel = b.valid.numpy(), b.mel.numpy()
        segments: dict[int, set] = {r: set() for r in range(rows)}
        for p in b.pieces:
            utt = mels[p.index]
            assert p.start == placed[p.index]  # pieces in order, contiguous
            placed[p.index] += p.frames
            assert p.last == (placed[p.index] == utt.shape[1])
            if p.row is None:
                assert utt.shape[1] == 0
                continue
            lo, hi = valid[p.row, :, p.column]
            assert (valid[p.row, :, p.column : p.column + p.frames] == [[lo], [hi]]).all()
            assert p.column - lo == min(context, p.start)
            assert hi - (p.column + p.frames) == min(context, utt.shape[1] - p.start - p.frames)
            np.testing.assert_array_equal(mel[p.row, :, lo:hi], utt[:, p.start - (p.column - lo) :][:, : hi - lo])
            segments[p.row].add((int(lo), int(hi)))
        for r, segs in segments.items():
            segs = sorted(segs)
            if not segs:
                assert (valid[r, 0] == 0).all() and (valid[r, 1] == length).all()
                np.testing.assert_array_equal(mel[r], silence)
                continue
            for (_, hi), (lo, _) in zip(segs[:-1], segs[1:], strict=True):
                assert lo - hi >= gap
            for t in range(length):
                lo, hi = valid[r, :, t]
                assert (lo, hi) in segs
                if not lo <= t < hi:
                    np.testing.assert_array_equal(mel[r, :, t], silence)
                    distance = [max(a - t, t - b + 1) for a, b in segs]
                    assert max(lo - t, t - hi + 1) == min(distance)
    assert placed == [m.shape[1] for m in mels]


@pytest.mark.parametrize("seed", range(40))
def test_random_layouts_keep_every_invariant(seed):
    rng = np.random.default_rng(seed)
    pool = [0, 1, 2, 3, 5, 8, 13, 30, 64, 100]
    lengths = [int(rng.choice(pool)) if rng.random() < 0.8 else int(rng.integers(0, 200)) for _ in range(25)]
    window, context, batch = int(rng.integers(1, 40)), int(rng.integers(0, 8)), int(rng.integers(1, 5))
    gap = None if rng.random() < 0.5 else int(rng.integers(0, context + 3))
    items = utterances(lengths, seed=seed)
    batches = list(pack(items, window, context, batch, SILENCE, gap))
    check_layout(batches, items, context, context if gap is None else gap)
    out = list(vocode(echo_engine(3), items, window, context, batch, SILENCE, 3, gap))
    assert [k for k, _ in out] == [k for k, _ in items]
    for (_, mel), (_, audio) in zip(items, out, strict=True):
        np.testing.assert_array_equal(audio, np.repeat(mel[0], 3))


def test_every_batch_has_the_same_shape_and_float16_input_is_accepted():
    items = [(k, m.astype(np.float16)) for k, m in utterances([3, 50, 7])]
    batches = list(pack(items, 8, 4, 5, SILENCE))
    assert {tuple(b.mel.shape) for b in batches} == {(5, 3, 16)}
    assert {tuple(b.valid.shape) for b in batches} == {(5, 2, 16)}


def fill(lengths, context: int, length: int = 512, batch: int = 16, gap=None) -> float:
    """Kept frames / frames run over the full batches (the last, partial one left out)."""
    items = [(i, np.zeros((1, n), np.float32)) for i, n in enumerate(lengths)]
    batches = list(pack(items, window_for(context, length), context, batch, SILENCE, gap))
    assert sum(b.real_frames for b in batches) == sum(lengths)
    return sum(b.real_frames for b in batches[:-1]) / (batch * length * (len(batches) - 1))


def test_short_utterances_fill_the_batches():
    """64-frame utterances in rows of 512 with C = 12: one per row would keep 12.5% of the work; the tape keeps
    ~81% (gaps of C between neighbours, 2C of context where an utterance is cut across rows), and ~91% with a
    gap of 4 frames (enough for HiFi-GAN, see test_gap_threshold_is_the_widest_single_layer). Typical TTS
    lengths (log-normal around 3 s) keep ~92%."""
    assert fill([64] * 1000, 12) > 0.75
    assert fill([64] * 1000, 12, gap=4) > 0.85
    rng = np.random.default_rng(0)
    tts = np.clip(rng.lognormal(np.log(300), 0.6, 1000), 1, 3000).astype(int).tolist()
    assert fill(tts, 12) > 0.9
    assert fill([3001] * 30, 12) > 0.9  # long ones: whole-row pieces of W = L - 2C frames
    batches = list(pack(utterances([64] * 200, n_mels=1), window_for(12, 512), 12, 16, SILENCE))
    per_row = [len({p.index for p in batches[0].pieces if p.row == r}) for r in range(16)]
    assert min(per_row) >= 6


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


def test_stitcher_keeps_its_own_copy_of_an_unfinished_utterance():
    """An utterance cut across batches outlives the first batch's audio buffer, which vocode's next device copies
    reuse: overwriting that buffer after feeding must not change the stitched audio."""
    hop = 2
    stitcher = Stitcher(hop)
    engine = echo_engine(hop)
    batches = list(pack(utterances([25]), 10, 1, 2, SILENCE))
    assert len(batches) == 2
    buffer = engine(batches[0].mel, batches[0].valid).numpy().copy()
    assert stitcher.feed(batches[0], buffer) == [] and stitcher.pending
    reference = Stitcher(hop)
    reference.feed(batches[0], buffer.copy())
    buffer[:] = 123.0  # the next batches' copies land here
    got = stitcher.feed(batches[1], engine(batches[1].mel, batches[1].valid))
    want = reference.feed(batches[1], engine(batches[1].mel, batches[1].valid))
    assert len(got) == 1 and np.array_equal(got[0][1], want[0][1]) and not (got[0][1] == 123.0).any()


def test_vocode_streams():
    """vocode hands back the first utterances after two batches of many short ones (one batch stays in flight
    while the next is launched), having read one item ahead."""
    consumed = []

    def items():
        for key, mel in utterances([5] * 1000):
            consumed.append(key)
            yield key, mel

    stream = vocode(echo_engine(2), items(), window=12, context=2, batch=2, silence=SILENCE, hop=2)
    key, audio = next(stream)
    assert key == "u0" and audio.shape == (10,)
    assert len(consumed) <= 9  # a row of 16 frames holds 2 (5 + gap 2 + 5): 2 batches of 2 rows, +1 look-ahead
    assert [k for k, _ in stream][-1] == "u999"


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
    window = window_for(context, length)
    dtype = next(model.parameters()).dtype

    def engine(m, v):
        return model(m.to(dtype), v).reshape(m.shape[0], -1)

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
