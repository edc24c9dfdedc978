"""The device stream: packed batches to the engine's device and back, batches in flight, the audio checks.

    stream = VocoderStream(engine, plan, sample_rate, round_trip=RoundTrip(preset, engine.device))
    for done in stream.vocode(items):          # items: (key, mel [n_mels, T] float32), in order (or NEW_ROW)
        done.key, done.audio, AudioCheck.from_sums(done.sums), done.error

On a GPU the mel batch goes up through pinned memory on a copy stream of its own (while the batch before
computes), the engine and the round-trip check run on the current stream, and the audio and per-frame check values
come back on a copy stream of their own into pinned buffers of the batch's own (the stitched utterances are views
of them: _HostCopies); the next batch is packed and launched before the previous one's audio is waited for, so the
device does not wait on the host between batches.
Chunking and stitching are batchvoc/chunking.py (numpy only); the check's maths are batchvoc/roundtrip.py.

A batch whose engine call or copy raises fails only the utterances with a piece in it (their `error` says why);
`MAX_FAILED_BATCHES` failures in a row mean the device itself is broken, and the stream raises.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from batchvoc.chunking import ChunkPlan, NewRow, PackedBatch, Stitched, Stitcher, pack_plan
from batchvoc.roundtrip import FRAME_VALUES, RoundTrip, audio_counts

log = logging.getLogger(__name__)
MAX_FAILED_BATCHES = 3

Waiter = Callable[[], tuple[np.ndarray, np.ndarray]]


class _Uploads:
    """Host-to-device copies of a batch's arrays through pinned memory, on a copy stream of their own: they run
    while the batch before computes, instead of queued between its last kernel and this batch's first (H200,
    gsv_v4 batch 16: ~0.2 ms idle per 37 ms forward). The compute stream waits for them before their first use.
    On a CPU the arrays become tensors as they are."""

    def __init__(self, device: torch.device):
        self.device = device
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def __call__(self, *arrays: np.ndarray) -> list[Tensor]:
        hosts = [torch.from_numpy(a) for a in arrays]
        if self._stream is None:
            return [t.to(self.device) for t in hosts]
        with torch.cuda.stream(self._stream):  # the pinned blocks are recycled once these copies end
            tensors = [t.pin_memory().to(self.device, non_blocking=True) for t in hosts]
        compute = torch.cuda.current_stream(self.device)
        compute.wait_stream(self._stream)
        for t in tensors:
            t.record_stream(compute)  # allocated on the copy stream, used and freed on the compute stream
        return tensors


class VocoderStream:
    """An engine, its chunk plan and the audio checks: `vocode(items)` yields each utterance's Stitched result.

    engine: `engine(mel [B, n_mels, L] float32, bounds [B, 2, L] int64) -> audio [B, L * hop]` on `device`
    (an Engine, or any callable); round_trip: the mel check (None: only clipping and non-finite samples are
    counted); sample_rate: output rate, for progress in audio seconds.
    """

    def __init__(self, engine: Callable, plan: ChunkPlan, sample_rate: int, round_trip: RoundTrip | None = None,
                 device: torch.device | str | None = None):  # fmt: skip
        self.engine, self.plan, self.sample_rate, self.round_trip = engine, plan, sample_rate, round_trip
        self.device = torch.device(device if device is not None else getattr(engine, "device", "cpu"))
        self.checker = round_trip or _CountOnly()
        self.frames_kept = self.frames_run = 0  # over the last vocode() call: the pieces' frames / B * L per batch

    @property
    def packing_efficiency(self) -> float:
        """Kept frames / frames the engine ran, over the last vocode() call (0 before any batch)."""
        return self.frames_kept / self.frames_run if self.frames_run else 0.0

    def vocode(self, items: Iterable[tuple[Hashable, np.ndarray] | NewRow],
               progress: Callable[[float], None] | None = None,
               batch_done: Callable[[PackedBatch, bool], None] | None = None) -> Iterator[Stitched]:  # fmt: skip
        """Stitched utterances in input order (audio [T_i * hop] float32, check sums [FRAME_VALUES]); a
        chunking.NEW_ROW item starts the next utterance on a row of its own.

        progress: called with the audio seconds of each batch once its audio is back on the host; batch_done:
        called with each batch and whether it ran (False: it failed) before its utterances are handed back.
        Raises ValueError for a mel of the wrong shape (validate rows first), RuntimeError after
        MAX_FAILED_BATCHES failed batches in a row."""
        stitcher = Stitcher(self.plan.hop)
        copies, uploads = _HostCopies(), _Uploads(self.device)
        failures = 0
        self.frames_kept = self.frames_run = 0
        waiting: tuple[PackedBatch, Waiter | None, str | None] | None = None
        for packed in pack_plan(items, self.plan):
            launched, error = self._launch(packed, uploads, copies)
            self.frames_kept += packed.real_frames
            self.frames_run += packed.mel.shape[0] * packed.length if packed.rows_used else 0
            if waiting is not None:
                done, failures = self._finish(stitcher, *waiting, failures, progress, batch_done)
                yield from done
            waiting = (packed, launched, error)
        if waiting is not None:
            done, failures = self._finish(stitcher, *waiting, failures, progress, batch_done)
            yield from done
        if stitcher.pending:
            raise RuntimeError("stream ended inside an utterance")

    def _launch(self, packed: PackedBatch, uploads: _Uploads, copies: _HostCopies
                ) -> tuple[Waiter | None, str | None]:  # fmt: skip
        """Start a batch on the device; (a wait() for its audio and check values, None) or (None, the error)."""
        if not packed.rows_used:  # only empty utterances: nothing to run
            rows = packed.mel.shape[0]
            zeros = np.zeros((rows, packed.length * self.plan.hop), np.float32)
            values = np.zeros((FRAME_VALUES, rows, packed.length), np.float32)
            return (lambda: (zeros, values)), None
        try:
            mel, bounds = uploads(packed.mel, packed.bounds)
            with torch.inference_mode():
                audio = self.engine(mel, bounds)
                values = self.checker.frame_values(audio, mel, bounds)
            return copies(audio.reshape(audio.shape[0], -1), values), None
        except (RuntimeError, ValueError, TypeError) as err:  # one batch's failure is its utterances'
            return None, _reason(err)

    def _finish(self, stitcher: Stitcher, packed: PackedBatch, launched: Waiter | None, error: str | None,
                failures: int, progress, batch_done) -> tuple[list[Stitched], int]:  # fmt: skip
        audio = values = None
        if launched is not None:
            try:
                audio, values = launched()
            except RuntimeError as err:  # an asynchronous device error surfaces at the wait
                error = _reason(err)
        if batch_done is not None:
            batch_done(packed, error is None)
        if error is not None:
            failures += 1
            log.error("a batch of %d utterance pieces failed: %s", len(packed.pieces), error)
            if failures >= MAX_FAILED_BATCHES:
                raise RuntimeError(f"{failures} batches in a row failed on {self.device}; last: {error}")
            return stitcher.feed(packed, None, error=error), failures
        if progress is not None:
            progress(packed.real_frames * self.plan.hop / self.sample_rate)
        return stitcher.feed(packed, audio, values), 0


def vocode_audio(engine: Callable, items: Iterable[tuple[Hashable, np.ndarray]], plan: ChunkPlan,
                 round_trip: RoundTrip | None = None) -> Iterator[tuple[Hashable, np.ndarray]]:  # fmt: skip
    """(key, audio [T_i * hop] float32) in input order, for callers that hold mels [n_mels, T_i] (the Python API);
    the round trip's device work runs when given (its verdicts are not returned). Raises RuntimeError naming the
    reason when a batch fails."""
    return audio_of(VocoderStream(engine, plan, sample_rate=1, round_trip=round_trip), items)


def audio_of(stream: VocoderStream, items: Iterable[tuple[Hashable, np.ndarray]]
             ) -> Iterator[tuple[Hashable, np.ndarray]]:  # fmt: skip
    """vocode_audio through a stream already made (Runtime.stream: the bench)."""
    for done in stream.vocode(items):
        if done.error is not None:
            raise RuntimeError(done.error)
        yield done.key, done.audio


def _reason(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return f"vocoding failed: {type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class _CountOnly:
    """The checks without the round trip: clipping and non-finite samples only."""

    @staticmethod
    def frame_values(audio: Tensor, mel: Tensor, bounds: Tensor) -> Tensor:
        return audio_counts(audio, bounds)


def _pinned(shape: torch.Size) -> Tensor:
    return torch.empty(shape, dtype=torch.float32, pin_memory=True)


MAX_PINNED_AUDIO_BYTES = 1 << 30  # page-locked audio handed out (as stitched utterances' views) at any one time


class _PinnedAudio:
    """The batches' pinned audio buffers still referenced by the utterances handed out (a process-wide count):
    `admit(array)` says whether one more (a numpy array over a pinned tensor; the utterances are its views) may be
    handed out as it is (True), or must be copied into ordinary memory so that its page-locked block goes back to
    torch's host allocator at once (False: a consumer is holding more than MAX_PINNED_AUDIO_BYTES of results, e.g.
    a caller keeping every utterance of a large call)."""

    def __init__(self, limit: int = MAX_PINNED_AUDIO_BYTES):
        self.limit, self.held = limit, 0
        self._lock = threading.RLock()  # released from the writer threads, or by a collection inside admit()

    def admit(self, array: np.ndarray) -> bool:
        size = array.nbytes
        with self._lock:
            if self.held + size > self.limit:
                return False
            self.held += size
        weakref.finalize(array, self._release, size)  # its views' base is array itself: it outlives them all
        return True

    def _release(self, size: int) -> None:
        with self._lock:
            self.held -= size


_PINNED_AUDIO = _PinnedAudio()


class _HostCopies:
    """Starts device-to-host copies of (audio, values) into pinned buffers of the batch's own, on a copy stream of
    their own (so the next batch's kernels need not wait for them); each call returns a wait() for them. On a CPU
    the tensors are handed back as numpy arrays.

    A batch's audio buffer is not reused for later batches: the stitched utterances are views of it (no copy per
    utterance: ~3-6 ms per batch of 16 x 10 s at 48 kHz on the host, and the stream's last batch is not overlapped
    by anything, BENCHMARKS.md), and torch's caching host allocator takes the block back once the last of them is
    dropped. Past _PinnedAudio's limit a batch's audio is copied into ordinary memory instead."""

    def __init__(self, pinned: _PinnedAudio = _PINNED_AUDIO):
        self._stream: torch.cuda.Stream | None = None
        self._pinned = pinned

    def __call__(self, audio: Tensor, values: Tensor) -> Waiter:
        if audio.device.type != "cuda":
            host = (audio.detach().float().numpy(), values.detach().numpy())
            return lambda: host
        audio = audio.detach().float()
        pair = (_pinned(audio.shape), _pinned(values.shape))
        if self._stream is None or self._stream.device != audio.device:
            self._stream = torch.cuda.Stream(audio.device)
        self._stream.wait_stream(torch.cuda.current_stream(audio.device))
        with torch.cuda.stream(self._stream):
            pair[0].copy_(audio, non_blocking=True)
            pair[1].copy_(values, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self._stream)
        audio.record_stream(self._stream)  # the allocator must not hand their memory out before the copies end
        values.record_stream(self._stream)

        def wait() -> tuple[np.ndarray, np.ndarray]:
            done.synchronize()
            host = pair[0].numpy()
            if not self._pinned.admit(host):
                host = host.copy()
            return host, pair[1].numpy()  # the values are summed at once (Stitcher.feed): no need to own them

        return wait
