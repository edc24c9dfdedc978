"""The write stage: a few threads turn each Vocoded row into its output-manifest fields and audio file.

Status: `error` (not written) when the row failed earlier, its audio holds NaN or Inf samples, or writing it
failed; `suspect` (written) when the round-trip check says the audio does not match its mel, or its mel looks
like another convention (check.mel_convention=warn let it through, or it only may be one:
conventions.looks_compressed); else `ok`. A row an earlier run of the
shard finished keeps the fields that run gave it (its audio file carries them: batchvoc/sink.py). Any
exception while judging, encoding or writing one row becomes that row's error (`write_failure` words it); the
other rows go on.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from batchvoc.roundtrip import suspect_reason
from batchvoc.runner.stages.channel import Channel
from batchvoc.runner.stages.vocode import Vocoded
from batchvoc.sink import ShardSink
from batchvoc.storage import WriteFault

WRITER_THREADS = 4


def write_failure(err: Exception) -> str:
    """The one-line reason a row's audio could not be written.

    A WriteFault (batchvoc/storage.py) already names its cause and output.dir (or, for a fault of the row's own
    path, its file: ShardSink.row_fault, the row's alone); the sink keeps the shard's first other one, and the
    pipeline raises it once every row is accounted for (a permanent one also stops the vocode stage from vocoding
    more rows). Hook for faults that must fail the shard at once: raise here instead of returning."""
    if isinstance(err, WriteFault):
        return str(err)
    if isinstance(err, OSError):
        return f"could not write the audio file: {err}"
    return f"could not write the audio file: {type(err).__name__}: {err}"


class WriteStage:
    """WRITER_THREADS threads writing the items of a channel into `results[index]` (output-manifest fields).

    max_mel_error: rows above it are suspect; None: no round-trip verdict (check off)."""

    def __init__(self, sink: ShardSink, results: list[dict[str, Any] | None], max_mel_error: float | None,
                 threads: int = WRITER_THREADS):  # fmt: skip
        self.sink, self.results, self.max_mel_error = sink, results, max_mel_error
        self.seconds = 0.0
        self.reused: set[int] = set()  # indexes of the rows whose earlier audio file was reused
        self.fatal: BaseException | None = None
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, name=f"write-{sink.shard}-{i}", daemon=True)
                         for i in range(threads)]  # fmt: skip
        self._items: Channel[Vocoded] | None = None

    def start(self, items: Channel[Vocoded]) -> WriteStage:
        self._items = items
        for thread in self._threads:
            thread.start()
        return self

    def join(self) -> None:
        """Wait for every item; re-raise a fault that write_failure said is the shard's."""
        for thread in self._threads:
            thread.join()
        if self.fatal is not None:
            raise self.fatal

    def _work(self) -> None:
        try:
            for item in self._items:
                start = time.perf_counter()
                fields = self.write(item)
                with self._lock:
                    self.results[item.index] = fields
                    self.seconds += time.perf_counter() - start
        except BaseException as err:  # noqa: BLE001 - the shard's fault: handed to join()
            self.fatal = err
            self._items.cancel()

    def write(self, item: Vocoded) -> dict[str, Any]:
        """The output-manifest fields of one row, writing its audio when it has some."""
        sink = self.sink
        try:
            if item.written:
                fields = sink.reuse(item.id)
                with self._lock:
                    self.reused.add(item.index)
                return fields
            if item.error is not None:
                return sink.failed(item.id, item.error)
            check = item.check
            if check.non_finite:
                return sink.failed(item.id, f"the vocoder output has {check.non_finite} NaN or Inf samples")
            reason = self.verdict(item)
            checks = dict(clipped=check.clipped, mel_error=check.mel_error, status="suspect" if reason else "ok",
                          error=reason)  # fmt: skip
            return sink.write(item.id, item.audio, checks)
        except Exception as err:  # noqa: BLE001 - one row's fault is never the shard's (write_failure may say it is)
            return sink.failed(item.id, write_failure(err))

    def verdict(self, item: Vocoded) -> str | None:
        """Why a vocoded row is suspect (its convention or level warning, then the round trip's reason, which
        guesses no other cause where the warning names the mel's), or None."""
        reasons = []
        if item.warning:
            reasons.append(item.warning)
        if self.max_mel_error is not None:
            reasons.append(suspect_reason(item.check, self.max_mel_error, mel_fault=bool(item.warning)))
        return "; ".join(r for r in reasons if r) or None
