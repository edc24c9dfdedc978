"""Chunking (numpy only): the tape layout, segment bounds, packing efficiency and stitching, with a transparent fake
engine (mel row 0 repeated hop times per frame) whose audio stitching must give back exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from batchvoc.chunking import (
    NEW_ROW,
    ChunkPlan,
    PackedBatch,
    Stitcher,
    Tape,
    chunk_frames_for,
    fitted_plan,
    pack,
    pack_plan,
    packed_rows,
)

SILENCE = np.float32(math.log(1e-5))


def echo(mel: np.ndarray, hop: int) -> np.ndarray:
    """A fake engine's audio [B, L * hop]: mel row 0 repeated hop times per frame."""
    return np.repeat(mel[:, 0, :], hop, axis=-1)


def vocode(items, chunk: int, context: int, batch: int, floor, hop: int, gap=None):
    """pack -> echo -> Stitcher: (key, audio) in input order."""
    stitcher = Stitcher(hop)
    out = []
    for b in pack(items, chunk, context, batch, floor, gap):
        out += [(s.key, s.audio) for s in stitcher.feed(b, echo(b.mel, hop))]
    assert not stitcher.pending
    return out


def utterances(lengths, n_mels=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(f"u{i}", rng.standard_normal((n_mels, n)).astype(np.float32)) for i, n in enumerate(lengths)]


# --- bookkeeping ---------------------------------------------------------------------------------------------


def test_chunk_frames_for_makes_round_windows():
    assert chunk_frames_for(12, 512) == 512 - 24
    assert chunk_frames_for(12, 938) == 944 - 24  # rows of a multiple of 8 frames
    assert chunk_frames_for(13, 500, 32) == 512 - 26
    assert chunk_frames_for(40, 16, 32) + 80 == 128  # 2C + multiple = 112, rounded up to 128
    with pytest.raises(ValueError):
        chunk_frames_for(-1)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_echo_roundtrip_in_order(batch):
    hop, window, context = 4, 10, 3
    items = utterances([0, 1, 9, 10, 11, 25, 0, 7, 40, 0])
    out = vocode(items, window, context, batch, SILENCE, hop)
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
    assert first.mel.shape == (3, 3, 12) and first.mel.dtype == np.float32
    assert first.bounds.shape == (3, 2, 12) and first.bounds.dtype == np.int64
    # (index, row, column, start, frames, last)
    assert [(p.index, p.row, p.column, p.start, p.frames, p.last) for p in first.pieces] == [
        (0, 0, 0, 0, 3, True),  # u0 at the row start: its true edge, no context
        (1, 0, 5, 0, 5, False),  # u1 after a gap of C; cut: 5 frames + C frames of context after
        (1, 1, 2, 5, 8, False),  # whole row: C context, W centre frames, C context
        (1, 2, 2, 13, 7, True),  # C context, the rest, up to its true end
        (2, 2, 11, 0, 1, True),  # u2 after a gap of C
    ]
    assert [(p.index, p.row, p.frames, p.last) for p in second.pieces] == [(3, None, 0, True), (4, 0, 5, True)]
    assert first.real_frames == 3 + 20 + 1 and first.rows_used == 3 and first.packing_efficiency == 24 / 36
    assert second.real_frames == 5 and second.rows_used == 1

    def bounds(b, row):
        return [tuple(v) for v in b.bounds[row].T.tolist()]

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
        assert b.bounds.shape == (rows, 2, length)
        valid, mel = b.bounds, b.mel
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
    out = vocode(items, window, context, batch, SILENCE, 3, gap)
    assert [k for k, _ in out] == [k for k, _ in items]
    for (_, mel), (_, audio) in zip(items, out, strict=True):
        np.testing.assert_array_equal(audio, np.repeat(mel[0], 3))


@pytest.mark.parametrize("seed", range(20))
def test_a_tape_counts_the_rows_and_batches_pack_fills(seed):
    """The shard planner counts rows with a Tape on frame counts alone (manifest/shards.py): what pack makes."""
    rng = np.random.default_rng(seed)
    lengths = [int(n) for n in rng.integers(1, 300, size=int(rng.integers(1, 60)))]
    plan = ChunkPlan(int(rng.integers(8, 100)), int(rng.integers(0, 12)), int(rng.integers(1, 6)), SILENCE, 1,
                     None if seed % 2 else int(rng.integers(1, 10)))  # fmt: skip
    batches = list(pack_plan(utterances(lengths, n_mels=1, seed=seed), plan))
    rows = packed_rows(lengths, plan)
    assert len(batches) == -(-rows // plan.batch)
    assert sum(b.rows_used for b in batches) == rows  # only the last row may end part-filled, never skipped
    tape = Tape(plan.chunk_frames, plan.context, plan.gap)
    placed = [(p.row, p.at, p.start, p.frames) for n in lengths for p in tape.place(n)]
    pieces = [(k * plan.batch + p.row, p.column - min(plan.context, p.start), p.start, p.frames)
              for k, b in enumerate(batches) for p in b.pieces]  # fmt: skip
    assert placed == pieces  # every piece where the tape put it (p.column: its centre, after `lead` frames)


def test_new_row_lays_out_what_follows_as_it_is_alone():
    """After a NEW_ROW the utterances take the columns they take in a pack of their own, rows shifted by the rows
    begun before; the rows before keep their layout; a NEW_ROW on an empty row (first, or twice) changes nothing."""
    first, second = utterances([7, 30, 5], seed=1), utterances([9, 4, 26, 3], seed=2)
    second = [(f"b{k}", m) for k, m in second]

    def layout(items):
        return [(p.key, b_i * 2 + p.row, p.column, p.start, p.frames)
                for b_i, b in enumerate(pack(items, 12, 2, 2, SILENCE)) for p in b.pieces]  # fmt: skip

    rows = packed_rows([m.shape[1] for _, m in first], ChunkPlan(12, 2, 2, float(SILENCE), 2))
    both = layout([NEW_ROW, *first, NEW_ROW, NEW_ROW, *second])
    assert both[: len(layout(first))] == layout(first)
    assert both[len(layout(first)) :] == [(k, r + rows, c, s, n) for k, r, c, s, n in layout(second)]
    assert [k for k, _ in vocode([*first, NEW_ROW, *second], 12, 2, 2, SILENCE, 2)] == [k for k, _ in first + second]


def test_every_batch_has_the_same_shape_and_float16_input_is_accepted():
    items = [(k, m.astype(np.float16)) for k, m in utterances([3, 50, 7])]
    batches = list(pack(items, 8, 4, 5, SILENCE))
    assert {tuple(b.mel.shape) for b in batches} == {(5, 3, 16)}
    assert {tuple(b.bounds.shape) for b in batches} == {(5, 2, 16)}


def efficiency(lengths, context: int, length: int = 512, batch: int = 16, gap=None) -> float:
    """Kept frames / frames run over the full batches (the last, partial one left out)."""
    items = [(i, np.zeros((1, n), np.float32)) for i, n in enumerate(lengths)]
    batches = list(pack(items, chunk_frames_for(context, length), context, batch, SILENCE, gap))
    assert sum(b.real_frames for b in batches) == sum(lengths)
    return sum(b.real_frames for b in batches[:-1]) / (batch * length * (len(batches) - 1))


def test_short_utterances_fill_the_batches():
    """64-frame utterances in rows of 512 with C = 12: one per row would keep 12.5% of the work; the tape keeps
    ~81% (gaps of C between neighbours, 2C of context where an utterance is cut across rows), and ~91% with a
    gap of 4 frames (enough for HiFi-GAN, see test_gap_threshold_is_the_widest_single_layer). Typical TTS
    lengths (log-normal around 3 s) keep ~92%."""
    assert efficiency([64] * 1000, 12) > 0.75
    assert efficiency([64] * 1000, 12, gap=4) > 0.85
    rng = np.random.default_rng(0)
    tts = np.clip(rng.lognormal(np.log(300), 0.6, 1000), 1, 3000).astype(int).tolist()
    assert efficiency(tts, 12) > 0.9
    assert efficiency([3001] * 30, 12) > 0.9  # long ones: whole-row pieces of W = L - 2C frames
    batches = list(pack(utterances([64] * 200, n_mels=1), chunk_frames_for(12, 512), 12, 16, SILENCE))
    per_row = [len({p.index for p in batches[0].pieces if p.row == r}) for r in range(16)]
    assert min(per_row) >= 6


def test_pack_is_lazy():
    consumed = []

    def items():
        for key, mel in utterances([20] * 100):
            consumed.append(key)
            yield key, mel

    stream = pack(items(), chunk=10, context=2, batch=4, floor=SILENCE)
    first = next(stream)
    assert isinstance(first, PackedBatch) and first.rows_used == 4
    assert len(consumed) <= 3  # 2 windows per utterance: the first batch needs 2 utterances (+1 look-ahead)


def test_stitcher_returns_utterances_as_they_complete():
    hop = 2
    items = utterances([25, 3])
    stitcher = Stitcher(hop)
    done = []
    for b in pack(items, 10, 1, 2, SILENCE):
        done.append([s.key for s in stitcher.feed(b, echo(b.mel, hop))])
    assert done == [[], ["u0", "u1"]]
    assert not stitcher.pending


def test_stitcher_hands_on_views_of_the_audio_it_is_fed():
    """No copy per utterance: an utterance in one piece is a view of its batch's audio; one cut across batches is
    joined once its last piece arrives, from views of each batch's audio (the stream gives every batch buffers of
    its own, so the views stay valid)."""
    hop = 2
    stitcher = Stitcher(hop)
    batches = list(pack(utterances([25, 4]), 10, 1, 2, SILENCE))
    assert len(batches) == 2
    fed = [echo(b.mel, hop) for b in batches]
    assert stitcher.feed(batches[0], fed[0]) == [] and stitcher.pending
    cut, whole = stitcher.feed(batches[1], fed[1])
    assert (cut.key, whole.key) == ("u0", "u1")
    assert np.shares_memory(whole.audio, fed[1]) and whole.audio.dtype == np.float32
    assert not any(np.shares_memory(cut.audio, f) for f in fed)
    mels = dict(utterances([25, 4]))
    assert np.array_equal(cut.audio, np.repeat(mels["u0"][0], hop))
    assert np.array_equal(whole.audio, np.repeat(mels["u1"][0], hop))


def test_empty_utterances_and_bad_shapes():
    out = vocode(utterances([0, 0]), 4, 1, 2, SILENCE, 2)
    assert [(k, a.shape) for k, a in out] == [("u0", (0,)), ("u1", (0,))]
    with pytest.raises(ValueError, match="expected"):
        list(pack([("a", np.zeros((3, 5))), ("b", np.zeros((4, 5)))], 4, 1, 2, SILENCE))


def test_stitcher_sums_per_frame_values_per_utterance_and_fails_only_touched_utterances():
    """Per-frame values [K, B, L] summed over each utterance's piece centres; a failed batch fails exactly the
    utterances with a piece in it (an utterance cut across a failed and a good batch included)."""
    hop, chunk, context = 2, 10, 1
    items = utterances([3, 25, 4, 30, 2])
    batches = list(pack(items, chunk, context, 2, SILENCE))
    stitcher = Stitcher(hop)
    done = []
    for i, b in enumerate(batches):
        values = np.stack([b.mel[:, 0, :], np.ones(b.mel[:, 0, :].shape, np.float32)])
        if i == 1:
            done += stitcher.feed(b, None, error="vocoding failed: boom")
        else:
            done += stitcher.feed(b, echo(b.mel, hop), values)
    failed = {p.index for p in batches[1].pieces}
    assert [s.index for s in done] == list(range(len(items)))
    for s, (_, mel) in zip(done, items, strict=True):
        if s.index in failed:
            assert s.error == "vocoding failed: boom" and s.audio.size == 0
        else:
            assert s.error is None and np.array_equal(s.audio, np.repeat(mel[0], hop))
            assert np.allclose(s.sums, [mel[0].sum(), mel.shape[1]], rtol=1e-5)


def test_chunk_plan():
    plan = ChunkPlan.for_model(context=12, batch=4, log_mel_floor=float(SILENCE), hop=480)
    assert plan.length == 1024 and plan.shape == (4, 1024) and plan.chunk_frames == 1000
    with pytest.raises(ValueError):
        ChunkPlan(0, 12, 4, float(SILENCE), 480)


def test_a_fitted_plan_runs_short_utterances_on_rows_and_batches_of_their_size_with_the_same_audio():
    plan = ChunkPlan(486, 13, 4, float(SILENCE), 256)  # hifigan_v1 on a CPU: rows of 512, here batches of 4
    assert fitted_plan(plan, [1]) == ChunkPlan(32 - 26, 13, 1, float(SILENCE), 256)  # 1 frame: a row of 32
    assert fitted_plan(plan, [10, 1, 40]).shape == (1, 128)  # 10 + 13 + 1 + 13 + 40 = 77 frames of one row
    assert fitted_plan(plan, [300]).shape == (1, 512)  # never longer than the plan's rows
    assert fitted_plan(plan, [1400]).shape == (4, 512)  # 3 rows: batches of 4 (a power of two)
    assert fitted_plan(plan, [900]).shape == (2, 512)
    assert fitted_plan(plan, [486 * 9]) == plan and fitted_plan(plan, []) == plan
    # rounded to ROW_MULTIPLE instead (a CPU's): 1 frame on a row of 32 (2 x 13 + 1 at least), 33 on 40, 77 on 80
    assert [fitted_plan(plan, f, powers=False).shape for f in ([1], [33], [10, 1, 40])] == [(1, 32), (1, 40), (1, 80)]
    items = utterances([1, 10, 40, 3])
    fitted = fitted_plan(plan, [m.shape[1] for _, m in items])
    whole = vocode(items, plan.chunk_frames, plan.context, plan.batch, SILENCE, plan.hop)
    short = vocode(items, fitted.chunk_frames, fitted.context, fitted.batch, SILENCE, plan.hop)
    assert all(k == j and np.array_equal(a, b) for (k, a), (j, b) in zip(whole, short, strict=True))
