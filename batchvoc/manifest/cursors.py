"""Readers left inside Parquet row groups, so that a shard continues where an earlier shard of its group stopped.

pyarrow reads a row group from its start: a shard that begins at row r of a group decodes (and drops) its first
r rows, so a group cut into k shards is decoded about k / 2 times over when each shard opens its own reader. A
shard's reader that stops inside a group is kept here (a few per process, newest first), and the next shard of
that group that begins at or after where it stopped takes it, decoding only the rows in between. Taken readers
are the caller's alone (one shard at a time); a file whose footer differs from the one a reader was opened on
(rewritten since) never reuses it.

    cursor = take(file, parquet, group) ... yield from cursor.rows(first, stop, batch_size) ... give(file, cursor)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

KEPT = 4  # readers kept per process: each holds a decode buffer and at most one batch of decoded rows


class Cursor:
    """A reader of one row group of `parquet`, at group row `position` (rows before it are read or skipped)."""

    def __init__(self, parquet: pq.ParquetFile, group: int, batch_size: int):
        self.parquet, self.group, self.batch_size = parquet, group, batch_size
        self.position = 0
        self._batches = parquet.iter_batches(batch_size=batch_size, row_groups=[group])
        self._pending: pa.RecordBatch | None = None  # rows at `position` already decoded, past the last caller's stop

    def rows(self, first: int, stop: int) -> Iterator[pa.RecordBatch]:
        """The group's rows [first, stop) (group-relative, first >= position), at most batch_size at a time;
        the rows before `first` are decoded and dropped."""
        if first < self.position:
            raise ValueError(f"cursor at row {self.position} cannot go back to row {first}")
        while self.position < stop:
            batch = self._pending if self._pending is not None else next(self._batches, None)
            self._pending = None
            if batch is None:  # the group ends before `stop`
                return
            begin = self.position
            end = begin + batch.num_rows
            if end > stop:
                self._pending, end = batch.slice(stop - begin), stop
            self.position = end
            low = max(begin, first)
            if end > low:
                yield batch.slice(low - begin, end - low)

    @property
    def done(self) -> bool:
        """No rows left in the group."""
        return self.position >= self.parquet.metadata.row_group(self.group).num_rows


class _Kept:
    def __init__(self):
        self._lock = threading.Lock()
        self._cursors: list[tuple[str, Cursor]] = []  # newest last

    def take(self, file: str, parquet: pq.ParquetFile, group: int, first: int, batch_size: int) -> Cursor:
        """The kept reader of `group` of `file` furthest along but not past `first` (same footer, same batch
        size), or a new one on `parquet`."""
        with self._lock:
            fits = [(c.position, i) for i, (f, c) in enumerate(self._cursors)
                    if (f, c.group, c.batch_size) == (file, group, batch_size) and c.position <= first]  # fmt: skip
            for _, i in sorted(fits, reverse=True):
                cursor = self._cursors[i][1]
                if cursor.parquet.metadata.equals(parquet.metadata):
                    del self._cursors[i]
                    return cursor
        return Cursor(parquet, group, batch_size)

    def give(self, file: str, cursor: Cursor) -> None:
        """Keep `cursor` for a later shard (dropping the oldest beyond KEPT); a finished one is dropped."""
        if cursor.done:
            return
        with self._lock:
            self._cursors.append((file, cursor))
            del self._cursors[:-KEPT]

    def clear(self) -> None:
        with self._lock:
            self._cursors.clear()


KEPT_CURSORS = _Kept()
take, give, clear = KEPT_CURSORS.take, KEPT_CURSORS.give, KEPT_CURSORS.clear
