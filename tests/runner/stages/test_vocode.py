"""The device feed: shards run at once through one worker's stream share engine batches (a shard's tail with the
next one's head), with a real small HiFi-GAN in eager mode on CPU; each row's audio is what a run of its shard
alone gives, bit for bit, and every fault stays with the shards it touches. Joins have timeouts: a hang fails."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from batchvoc.chunking import ChunkPlan, packed_rows
from batchvoc.manifest import MelRow
from batchvoc.runner.stages.channel import Cancelled, Channel
from batchvoc.runner.stages.vocode import DeviceFeed, Vocoded
from batchvoc.stream import VocoderStream
from tests.test_stream import make_model

BATCH, LENGTH, TIMEOUT = 4, 64, 60
FIVE = [30, 52, 17, 41, 20]  # frames: utterances cut across rows, rows shared by two
SEVEN = [44, 23, 38, 60, 12, 35, 30]


@pytest.fixture(scope="module")
def model():
    torch.set_flush_denormal(True)
    model, preset = make_model("hifigan_v1_universal", reduced=16)
    yield model, preset
    torch.set_flush_denormal(False)


class Counted:
    """The model as an engine [B, n_mels, L] -> [B, L * hop], counting its calls; `fail(call)` says whether a
    call (numbered from 1) raises."""

    def __init__(self, model, fail=lambda call: False):
        self.model, self.fail, self.calls = model, fail, 0

    def __call__(self, mel, bounds):
        self.calls += 1
        if self.fail(self.calls):
            raise RuntimeError(f"device lost (this test's engine, call {self.calls})")
        return self.model(mel, bounds).reshape(mel.shape[0], -1)


def feed_of(model, engine) -> tuple[DeviceFeed, ChunkPlan]:
    net, preset = model
    plan = ChunkPlan.for_model(net.receptive_field(), BATCH, preset.silence, preset.hop_length, length=LENGTH)
    return DeviceFeed(VocoderStream(engine, plan, preset.sample_rate)), plan


def mel_rows(frames: list[int], prefix: str, seed: int) -> list[MelRow]:
    rng = np.random.default_rng(seed)
    return [MelRow(i, f"{prefix}{i}", (-5 + 2 * rng.standard_normal((80, n))).astype(np.float32))
            for i, n in enumerate(frames)]  # fmt: skip


def closed(rows: list[MelRow], error: BaseException | None = None) -> Channel[MelRow]:
    channel: Channel[MelRow] = Channel(len(rows) + 1)
    for row in rows:
        channel.put(row)
    channel.close(error)
    return channel


class Shard:
    """One shard's call of feed.vocode in a thread of its own: its results, or what it raised."""

    def __init__(self, feed: DeviceFeed, rows: Channel[MelRow], out: Channel[Vocoded] | None = None):
        self.out = out or Channel(64)
        self.times = self.error = None
        self._thread = threading.Thread(target=self._run, args=(feed, rows), daemon=True)
        self._thread.start()

    def _run(self, feed, rows):
        try:
            self.times = feed.vocode(rows, 80, self.out)
        except BaseException as err:  # noqa: BLE001 - the test looks at it
            self.error = err

    def results(self) -> dict[str, Vocoded]:
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "the shard hung"
        self.out.close()
        return {v.id: v for v in self.out}


def alone(feed: DeviceFeed, *shards: list[MelRow]) -> list[dict[str, Vocoded]]:
    return [Shard(feed, closed(rows)).results() for rows in shards]


def second_waiting(feed: DeviceFeed, first: list[MelRow], second: Channel[MelRow],
                   second_out: Channel[Vocoded] | None = None) -> tuple[Shard, Shard]:  # fmt: skip
    """The first shard on the device, its rows not yet ended, while the second is queued: the order a worker's
    next shard comes in (it is dealt while one vocodes). Then the first one's rows end."""
    rows: Channel[MelRow] = Channel(1)  # a put returns once the row before was taken: the device took it up
    a = Shard(feed, rows)
    for row in first:
        rows.put(row)
    b = Shard(feed, second, second_out)
    for _ in range(100 * TIMEOUT):
        if feed.queued == 1:
            break
        threading.Event().wait(0.01)
    assert feed.queued == 1
    rows.close()
    return a, b


def batches(plan: ChunkPlan, *shards: list[MelRow]) -> int:
    """Engine batches for shards fed one after another, each from the start of a row."""
    rows = sum(packed_rows([r.mel.shape[1] for r in rows], plan) for rows in shards)
    return -(-rows // plan.batch)


def assert_same_audio(got: dict[str, Vocoded], want: dict[str, Vocoded]) -> None:
    assert got.keys() == want.keys()
    for key, v in want.items():
        assert v.error is None and got[key].error is None, (key, got[key].error)
        assert np.array_equal(got[key].audio, v.audio), key
        assert got[key].check == v.check


def test_two_shards_share_batches_and_give_the_audio_of_each_alone(model, one_thread):
    engine = Counted(model[0])
    feed, plan = feed_of(model, engine)
    a_rows, b_rows = mel_rows(FIVE, "a", 1), mel_rows(SEVEN, "b", 2)
    want = alone(feed, a_rows, b_rows)
    separate, engine.calls = engine.calls, 0
    a, b = second_waiting(feed, a_rows, closed(b_rows))
    got = [a.results(), b.results()]
    assert separate == batches(plan, a_rows) + batches(plan, b_rows)
    assert engine.calls == batches(plan, a_rows, b_rows) < separate
    for g, w in zip(got, want, strict=True):
        assert_same_audio(g, w)
    assert a.error is None and b.error is None
    assert (a.times.rows, b.times.rows) == (5, 7) and b.times.frames == sum(SEVEN)
    assert 0 < a.times.packing_efficiency <= 1 and 0 < b.times.packing_efficiency <= 1
    assert a.times.first_row_at <= a.times.first_audio_at and a.times.seconds > 0


def test_the_last_shard_runs_its_part_filled_batch_alone(model, one_thread):
    """No other shard queued: the shard's last batch runs part-filled and it ends (here: twice in a row)."""
    engine = Counted(model[0])
    feed, plan = feed_of(model, engine)
    rows = mel_rows(FIVE, "a", 1)
    first, again = alone(feed, rows, rows)
    assert engine.calls == 2 * batches(plan, rows) and feed.queued == 0
    assert_same_audio(again, first)


def test_a_next_shard_that_fails_to_read_fails_alone(model, one_thread):
    feed, _ = feed_of(model, Counted(model[0]))
    a_rows, b_rows = mel_rows(FIVE, "a", 1), mel_rows(SEVEN, "b", 2)
    (want,) = alone(feed, a_rows)
    a, b = second_waiting(feed, a_rows, closed(b_rows[:2], OSError("unreadable part (this test's)")))
    assert_same_audio(a.results(), want)
    assert not b.results() and isinstance(b.error, OSError) and a.error is None  # its rows in the stream dropped


def test_a_next_shard_with_no_row_to_vocode_lets_the_first_end(model, one_thread):
    """Bad rows and rows an earlier run wrote pass straight to their shard's writer; the first shard's tail
    then runs alone."""
    engine = Counted(model[0])
    feed, plan = feed_of(model, engine)
    a_rows = mel_rows(FIVE, "a", 1)
    (want,) = alone(feed, a_rows)
    engine.calls = 0
    b_rows = [MelRow(0, "b0", error="mel is empty"), MelRow(1, "b1"), MelRow(2, "b2", mel=np.zeros((3, 5), np.float32))]
    a, b = second_waiting(feed, a_rows, closed(b_rows))
    assert_same_audio(a.results(), want)
    got = b.results()
    assert b.error is None and engine.calls == batches(plan, a_rows)
    assert got["b0"].error == "mel is empty" and got["b1"].written and "expected [80, T>0]" in got["b2"].error


def test_a_failed_batch_spanning_two_shards_fails_the_rows_of_both_in_it(model, one_thread):
    a_rows, b_rows = mel_rows(FIVE, "a", 1), mel_rows(SEVEN, "b", 2)
    feed, plan = feed_of(model, Counted(model[0]))
    want = alone(feed, a_rows, b_rows)
    shared = batches(plan, a_rows)  # the batch holding a's tail and b's head
    feed, _ = feed_of(model, Counted(model[0], fail=lambda call: call == shared))
    a, b = second_waiting(feed, a_rows, closed(b_rows))
    got = [a.results(), b.results()]
    assert a.error is None and b.error is None
    failed = [{k for k, v in g.items() if v.error} for g in got]
    assert failed[0] and failed[1], "the failing batch held rows of both shards"
    for g, w, bad in zip(got, want, failed, strict=True):
        assert all("device lost" in g[k].error for k in bad)
        assert_same_audio({k: g[k] for k in g.keys() - bad}, {k: w[k] for k in w.keys() - bad})


def test_a_broken_device_raises_in_every_shard_with_rows_in_it(model, one_thread):
    """Every batch fails: the third failure in a row (the batch a's tail shares with b's head) raises in both."""
    a_rows = mel_rows([60] * 9, "a", 1)  # one row each: batches a0-3, a4-7, a8 + b0-2
    feed, plan = feed_of(model, Counted(model[0], fail=lambda call: True))
    assert packed_rows([60] * 9, plan) == 9
    a, b = second_waiting(feed, a_rows, closed(mel_rows(SEVEN, "b", 2)))
    a.results(), b.results()
    for shard in (a, b):
        assert isinstance(shard.error, RuntimeError) and "batches in a row failed" in str(shard.error)
    c = Shard(feed, closed(mel_rows(FIVE, "c", 3)))  # a later shard gets a call of its own
    assert all("device lost" in v.error for v in c.results().values()) and c.error is None


def test_a_cancelled_shard_does_not_break_the_other_ones_rows(model, one_thread):
    """b's writer met a fatal fault (its channel cancelled) while b's head shares a batch with a's tail: b raises
    Cancelled, a's audio is what it is alone."""
    feed, _ = feed_of(model, Counted(model[0]))
    a_rows = mel_rows(FIVE, "a", 1)
    (want,) = alone(feed, a_rows)
    b_out: Channel[Vocoded] = Channel(64)
    b_out.cancel()
    a, b = second_waiting(feed, a_rows, closed(mel_rows(SEVEN, "b", 2)), b_out)
    assert_same_audio(a.results(), want)
    b.results()
    assert isinstance(b.error, Cancelled) and a.error is None


def test_an_utterance_vocodes_the_same_in_any_row_and_close_at_any_column(model, one_thread):
    """The eager model's output for one utterance is bit for bit the same in another row of a batch (what lets the
    feed put two shards in one batch: each from the start of a row), and only close at another column of a row
    (float rounding; the chunking parity tests' bound)."""
    feed, plan = feed_of(model, Counted(model[0]))
    x = mel_rows([41], "x", 5)[0]
    (first,) = alone(feed, [x])
    for before in ([60, 60, 60, 60, 60], [10]):  # x in row 5 (the second batch) at column 0 / in row 0 behind one
        rows = [*mel_rows(before, "y", 6), MelRow(len(before), "x0", x.mel)]
        (moved,) = alone(feed, rows)
        audio, want = moved["x0"].audio, first["x0"].audio
        if before[0] == 60:
            assert packed_rows(before, plan) == 5 and np.array_equal(audio, want)
        else:
            assert packed_rows([10, 41], plan) == 1 and np.abs(audio - want).max() <= 1e-4 * np.abs(want).max()
