"""One shard through the pipeline: read rows → chunk-and-pack → engine → stitch → sink, with stats.

Reading runs in a thread ahead of the engine and writing in a small thread pool behind it, so the device
is not kept waiting on Parquet decoding or audio encoding. vocode_s is the time the pipeline spent packing,
running the engine and stitching (not waiting for rows).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchvoc.batching import vocode
from batchvoc.errors import RowError
from batchvoc.manifest import MelRow, Shard, read_shard_rows
from batchvoc.manifest.conventions import MelChecks
from batchvoc.manifest.rows import check_id, id_strings, passthrough_table
from batchvoc.sink import ShardSink
from batchvoc.storage import WriteFault

WRITER_THREADS = 4
READ_AHEAD_ROWS = 256


@dataclass
class Packing:
    """How the worker feeds its engine: windows of `window` frames, `context` each side, `batch` per forward."""

    window: int
    context: int
    batch: int
    silence: float
    hop: int


def run_shard(shard: Shard, engine: Callable, packing: Packing, sink: ShardSink, checks: MelChecks | int,
              extra: dict[str, Any] | None = None,
              progress: Callable[[float], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Vocode every row of `shard` into `sink`; returns the shard's stats (written with its manifest).

    `checks`: the model's MelChecks (or just n_mels). `extra` (device, backend, precision, batch, actor, ...)
    is added to the stats. `progress(seconds)`: called with the audio seconds of each row as it is vocoded.
    """
    started = time.perf_counter()
    sink.remove_partials()
    passthrough = passthrough_table(shard)
    finished = _already_written(id_strings(passthrough.column("id")), sink)
    results: list[dict[str, Any] | None] = [None] * shard.rows
    reader = _ReadAhead(read_shard_rows(shard, checks, skip=set(finished)))
    write_seconds = [0.0]
    frames = 0

    def good_rows() -> Iterator[tuple[int, np.ndarray]]:
        nonlocal frames
        for row in reader:
            if row.error is not None:  # first: a duplicate id's file exists, but it is the earlier row's
                results[row.index] = sink.failed(row.id, row.error)
            elif row.index in finished:
                results[row.index] = sink.reuse(row.id)
            elif sink.fault is not None and sink.fault.permanent:  # its write would fail the same way
                results[row.index] = sink.failed(row.id, str(sink.fault))
            else:
                frames += row.mel.shape[1]
                yield row.index, row.mel

    with ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix=f"write-{shard.name}") as pool:
        pending: list[Future] = []
        ids = id_strings(passthrough.column("id"))
        stream = vocode(engine, good_rows(), packing.window, packing.context, packing.batch,
                        packing.silence, packing.hop)  # fmt: skip
        loop_started = time.perf_counter()
        for index, audio in stream:
            if progress is not None:
                progress(len(audio) / sink.sample_rate)
            pending.append(pool.submit(_write_row, sink, index, ids[index], audio, results, write_seconds))
        vocode_seconds = time.perf_counter() - loop_started - reader.waited
        for future in pending:
            future.result()
    for index, result in enumerate(results):
        if result is None:  # only if the reader died: never leave a row out of the manifest
            results[index] = sink.failed(str(ids[index]), "row was not read")
    if sink.fault is not None:  # not done: the driver retries a transient fault, reports a permanent one
        raise sink.fault
    stats = _stats(shard, results, frames, reader.seconds, vocode_seconds, write_seconds[0], started)
    stats.update(extra or {})
    sink.finish(results, passthrough, stats)
    return stats


def _already_written(ids: list, sink: ShardSink) -> set[int]:
    """Rows whose audio file an interrupted run already completed (from one listing of the shard's folder)."""
    written = sink.written()
    done = set()
    for index, key in enumerate(ids):
        try:
            check_id(key)
        except RowError:
            continue
        if key in written:
            done.add(index)
    return done


def _write_row(sink: ShardSink, index: int, key: str, audio: np.ndarray, results: list, seconds: list) -> None:
    start = time.perf_counter()
    try:
        results[index] = sink.write(key, audio)
    except WriteFault as fault:  # the sink keeps the first one; run_shard raises it once the rows are done
        results[index] = sink.failed(key, str(fault))
    seconds[0] += time.perf_counter() - start


def _stats(shard: Shard, results: list, frames: int, read_s: float, vocode_s: float, write_s: float,
           started: float) -> dict[str, Any]:  # fmt: skip
    ok = [r for r in results if r["status"] == "ok"]
    audio_seconds = sum(r["duration_s"] for r in ok)
    wall = time.perf_counter() - started
    return dict(shard=shard.name, rows=len(results), rows_ok=len(ok), rows_failed=len(results) - len(ok),
                frames=frames, audio_seconds=audio_seconds, read_s=read_s, vocode_s=vocode_s, write_s=write_s,
                wall_s=wall, x_realtime=audio_seconds / wall if wall > 0 else 0.0)  # fmt: skip


class _ReadAhead:
    """Iterates rows produced by a background thread; `seconds` is the reader's busy time, `waited` the
    consumer's time blocked on it."""

    _END = object()

    def __init__(self, rows: Iterator[MelRow]):
        self.seconds = 0.0
        self.waited = 0.0
        self._queue: queue.Queue = queue.Queue(READ_AHEAD_ROWS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._fill, args=(rows,), daemon=True)
        self._thread.start()

    def _fill(self, rows: Iterator[MelRow]) -> None:
        try:
            while True:
                start = time.perf_counter()
                row = next(rows, self._END)
                self.seconds += time.perf_counter() - start
                self._queue.put(row)
                if row is self._END:
                    return
        except BaseException as err:  # noqa: BLE001 - handed to the consumer thread
            self._error = err
            self._queue.put(self._END)

    def __iter__(self) -> Iterator[MelRow]:
        while True:
            start = time.perf_counter()
            row = self._queue.get()
            self.waited += time.perf_counter() - start
            if row is self._END:
                break
            yield row
        if self._error is not None:
            raise self._error
