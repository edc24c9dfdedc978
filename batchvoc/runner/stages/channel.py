"""A bounded queue between two stages, and a stage thread that feeds one.

Data moves one way: a producer thread puts items and closes the channel; the consumer iterates until it is
closed. A producer that dies closes the channel with its exception, which the consumer re-raises (the shard
then fails as a whole: per-row faults never get here, each stage turns them into that row's error).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()


class Cancelled(Exception):
    """Raised in a producer whose consumer gave up (the shard failed elsewhere)."""


class Channel(Generic[T]):
    """A bounded FIFO of at most `size` items. Several consumers may iterate it (each item goes to one); `waited`
    is the seconds consumers spent blocked on it."""

    def __init__(self, size: int):
        self._queue: queue.Queue = queue.Queue(size)
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self.waited = 0.0

    def put(self, item: T) -> None:
        """Blocks while the channel is full; raises Cancelled once the consumer side cancelled it. item: not None."""
        while not self._cancelled.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise Cancelled

    def close(self, error: BaseException | None = None) -> None:
        """No more items; error (if any) is raised in the consumers after the items already queued."""
        self._error = error
        if not self._cancelled.is_set():
            self._queue.put(_END)

    def cancel(self) -> None:
        """The consumers stop: queued items are dropped and the producer's next put raises Cancelled."""
        self._cancelled.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def __iter__(self) -> Iterator[T]:
        """The items until the producer closes the channel (then its error, if any, is raised); nothing more once
        the channel is cancelled."""
        while True:
            start = time.perf_counter()
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                item = None
            self.waited += time.perf_counter() - start
            if self._cancelled.is_set():
                return
            if item is None:
                continue
            if item is _END:
                self._queue.put(_END)  # for the other consumers
                break
            yield item
        if self._error is not None:
            raise self._error


class StageThread(threading.Thread):
    """Runs `work(items) -> iterable` over a source in a thread of its own, putting each output item into
    `out`; `seconds` is its busy time (time spent producing, not blocked putting into a full channel)."""

    def __init__(self, name: str, work: Callable[[], Iterable[T]], out: Channel[T]):
        super().__init__(name=name, daemon=True)
        self._work, self._out = work, out
        self.seconds = 0.0

    def run(self) -> None:
        try:
            items = iter(self._work())
            while True:
                start = time.perf_counter()
                item = next(items, _END)
                self.seconds += time.perf_counter() - start
                if item is _END:
                    break
                self._out.put(item)
        except Cancelled:
            return
        except BaseException as err:  # noqa: BLE001 - handed to the consumer thread
            self._out.close(err)
        else:
            self._out.close()
