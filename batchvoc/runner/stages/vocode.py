"""The vocode stage: the checked rows of every shard a worker runs at once, through its one device stream.

    feed = DeviceFeed(stream)                                    # one per worker (per device)
    times = feed.vocode(check_out, n_mels, write_in, progress)   # in each shard's own thread; returns when done

Good rows (a mel [n_mels, n_frames]) go to the VocoderStream; every other row (bad, or already written) passes
straight on to its shard's write stage. Each row leaves as one `Vocoded`, into its own shard's channel.

Why a feed: every `VocoderStream.vocode()` call ends by running its last, part-filled batch, so a call per shard
wasted up to half a batch per shard (a manifest of many files: many shards). Shards queue here in the order they
arrive; one device thread runs one `vocode()` call over the first shard's rows, then straight on into the rows of
the next queued shard (its tail and the next one's head share an engine batch), and lets the call end, running
its last batch part-filled, only when a shard's rows are exhausted and no other shard is queued. The dealer hands
an actor its next shard while one vocodes (runner/actors.py), so the next one is usually queued, reading.
Rather than a hand-over (a finishing shard leaving its unlaunched tail in the stream for a waiting one), one thread
owns the stream's packer, stitcher and batch in flight for their whole life: shards only queue their rows and wait,
data moves one way (rows in, results out), and no code has to decide who flushes a batch two shards share.
Each shard's rows start on a row of their own (chunking.NEW_ROW): an utterance's samples depend on its column in a
row by float rounding, not on its row (tests/runner/stages/test_vocode.py), so every shard's rows get the columns a
call of their own gives them, and the audio is today's bit for bit (checked on the eager CPU engine; on a GPU
engine only where its kernels compute a batch's rows alike, not checked here: within the parity tests' bounds in
any case); what is given up is the tail of one row per shard, against up to B - 1 rows of a part-filled batch.

Faults stay where they were: a failed batch fails the utterances with a piece in it (of one shard or two); a
broken device (stream.MAX_FAILED_BATCHES) raises in every shard with rows in the stream, and the queued ones start
a call of their own; a shard whose read or check stage dies, or whose writer cancels its channel, fails alone and
its rows still in the stream are dropped when they come out.

Per shard (VocodeTimes): rows, frames as before; seconds: from when the device took up its first row to when its
last result left, less the device's time waiting for any shard's checked rows (a batch shared with the next shard
counts in both); packing_efficiency: its kept frames over its share of its batches' frames (a shared batch's
frames split by kept frames), which is the stream's own figure for a shard that shares no batch.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from batchvoc.chunking import NEW_ROW, NewRow, PackedBatch, Stitched
from batchvoc.manifest import MelRow
from batchvoc.roundtrip import AudioCheck
from batchvoc.runner.stages.channel import Cancelled, Channel
from batchvoc.stream import VocoderStream


@dataclass
class Vocoded:
    """One row for the write stage: audio [n_samples] float32 and its checks, or the error that stopped it, or
    `written` (a previous run wrote its audio). `warning`: the convention the mel may be in (check.mel_convention=warn
    let it through, or only a doubt: the row is then suspect)."""

    index: int
    id: str | None  # None: a null id (the row failed)
    audio: np.ndarray | None = None
    check: AudioCheck | None = None
    error: str | None = None
    written: bool = False
    warning: str | None = None


@dataclass
class VocodeTimes:
    """What the stage did for one shard: rows and frames sent to the device, seconds spent (module doc), packing
    efficiency (module doc), and when (perf_counter) its first good row reached the device and its first audio
    left: a shard's start-up."""

    rows: int = 0
    frames: int = 0
    seconds: float = 0.0
    packing_efficiency: float = 0.0
    first_row_at: float | None = None
    first_audio_at: float | None = None


@dataclass(eq=False)
class _Turn:
    """One shard's rows on the device: its channels and hooks, and what the device thread counts for it (only
    that thread changes a turn once it is queued)."""

    rows: Channel[MelRow]
    n_mels: int
    out: Channel[Vocoded]
    progress: Callable[[float], None] | None
    stop: Callable[[], str | None] | None
    times: VocodeTimes = field(default_factory=VocodeTimes)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    in_flight: int = 0  # good rows in the stream, their result not yet out
    fed: bool = False  # every row taken from `rows`
    began: float = 0.0  # perf_counter when the device took it up
    idle: float = 0.0  # the feed's idle clock then
    kept: int = 0
    run: float = 0.0


@dataclass(eq=False)
class _Item:
    """A good row's key in the stream: whose it is."""

    turn: _Turn
    index: int
    id: str
    warning: str | None


class DeviceFeed:
    """One device stream shared by the shards a worker runs at once (module doc). Thread-safe: `vocode` is called
    from each shard's thread; a device thread of the feed's own runs the stream while any shard is queued."""

    def __init__(self, stream: VocoderStream):
        self.stream = stream
        self._lock = threading.Lock()
        self._queue: deque[_Turn] = deque()  # shards waiting for the device, in arrival order
        self._active: list[_Turn] = []  # taken up by the current call and not done (device thread only)
        self._thread: threading.Thread | None = None
        self._idle = 0.0  # seconds the device thread spent waiting for checked rows

    @property
    def queued(self) -> int:
        """Shards waiting for the device, not yet taken up."""
        with self._lock:
            return len(self._queue)

    def vocode(self, rows: Channel[MelRow], n_mels: int, out: Channel[Vocoded],
               progress: Callable[[float], None] | None = None,
               stop: Callable[[], str | None] | None = None) -> VocodeTimes:  # fmt: skip
        """Vocode the good rows of `rows` into `out`, pass the others on; return once every row is out.

        progress: called with the audio seconds of this shard's part of each batch that ran; stop: asked before
        each good row, a reason means "vocode no more rows" (e.g. the disk is full: their writes would fail the
        same way) and each remaining good row gets it as its error. Raises what the stream raises (a broken
        device), what `rows` raises (its read or check stage died), or Cancelled when `out` was cancelled; one
        row's fault becomes that row's error."""
        turn = _Turn(rows, n_mels, out, progress, stop)
        with self._lock:
            self._queue.append(turn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="device-feed", daemon=True)
                self._thread.start()
        turn.done.wait()
        if turn.error is not None:
            raise turn.error
        return turn.times

    def _run(self) -> None:
        """One stream.vocode() call after another while shards are queued; the thread ends when none is."""
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None
                    return
            self._call()

    def _call(self) -> None:
        try:
            for done in self.stream.vocode(self._items(), batch_done=self._batch_done):
                self._route(done)
        except BaseException as err:  # noqa: BLE001 - the device's fault: each shard in the stream raises it
            for turn in list(self._active):
                self._end(turn, err)

    def _items(self) -> Iterator[tuple[_Item, np.ndarray] | NewRow]:
        """The good rows of queued shards, one shard after another, each from the start of a row (module doc),
        until a shard ends with none queued."""
        while True:
            with self._lock:
                if not self._queue:
                    return
                turn = self._queue.popleft()
            self._active.append(turn)
            turn.began, turn.idle = time.perf_counter(), self._idle
            yield NEW_ROW
            try:
                yield from self._good_rows(turn)
            except Exception as err:  # noqa: BLE001 - its read or check stage died, or its writer cancelled: its own
                self._end(turn, err)
            turn.fed = True
            self._settle(turn)

    def _good_rows(self, turn: _Turn) -> Iterator[tuple[_Item, np.ndarray]]:
        rows = iter(turn.rows)
        while turn.error is None:
            start = time.perf_counter()
            row = next(rows, None)
            self._idle += time.perf_counter() - start
            if row is None:
                return
            if row.mel is None:
                turn.out.put(Vocoded(row.index, row.id, error=row.error, written=row.error is None))
                continue
            reason = _refused(row, turn)
            if reason is not None:
                turn.out.put(Vocoded(row.index, row.id, error=reason))
                continue
            turn.times.rows += 1
            turn.times.frames += row.mel.shape[1]
            turn.times.first_row_at = turn.times.first_row_at or time.perf_counter()
            turn.in_flight += 1
            yield _Item(turn, row.index, row.id, row.warning), row.mel

    def _batch_done(self, packed: PackedBatch, ran: bool) -> None:
        """Share a batch's frames, and report its audio, between the shards with pieces in it."""
        kept: dict[_Turn, int] = defaultdict(int)
        for piece in packed.pieces:
            kept[piece.key.turn] += piece.frames
        frames = packed.mel.shape[0] * packed.length if packed.rows_used else 0
        real = packed.real_frames
        for turn, n in kept.items():
            turn.kept += n
            turn.run += frames * n / real if real else 0.0
            if ran and turn.progress is not None and turn.error is None:
                turn.progress(n * self.stream.plan.hop / self.stream.sample_rate)

    def _route(self, done: Stitched) -> None:
        item: _Item = done.key
        turn = item.turn
        turn.in_flight -= 1
        if turn.error is None:
            turn.times.first_audio_at = turn.times.first_audio_at or time.perf_counter()
            if done.error is not None:
                result = Vocoded(item.index, item.id, error=done.error)
            else:
                check = AudioCheck.from_sums(done.sums)
                result = Vocoded(item.index, item.id, audio=done.audio, check=check, warning=item.warning)
            try:
                turn.out.put(result)
            except Cancelled as err:  # its writer met a fault of its shard's: the other shards go on
                self._end(turn, err)
        self._settle(turn)

    def _settle(self, turn: _Turn) -> None:
        """A shard whose rows are all taken and all out is done."""
        if turn.fed and turn.in_flight == 0 and not turn.done.is_set():
            times = turn.times
            times.seconds = time.perf_counter() - turn.began - (self._idle - turn.idle)
            times.packing_efficiency = turn.kept / turn.run if turn.run else 0.0
            self._active.remove(turn)
            turn.done.set()

    def _end(self, turn: _Turn, err: BaseException) -> None:
        """The shard fails with `err`; its results still in the stream are dropped as they come out."""
        if not turn.done.is_set():
            turn.error = err
            self._active.remove(turn)
            turn.done.set()


def _refused(row: MelRow, turn: _Turn) -> str | None:
    """Why a row with a mel is not vocoded (a stop reason, a wrong shape), or None."""
    reason = turn.stop() if turn.stop is not None else None
    if reason is not None:
        return reason
    mel = row.mel
    if mel.ndim != 2 or mel.shape[0] != turn.n_mels or mel.shape[1] == 0:
        return f"mel of shape {list(mel.shape)}, expected [{turn.n_mels}, T>0]"
    return None
