"""Readers left inside Parquet row groups, so that a shard continues where an earlier shard of its group stopped.

pyarrow reads a row group from its start: a shard that begins at row r of a group decodes (and drops) its first
r rows, so a group cut into k shards is decoded about k / 2 times over when each shard opens its own reader. A
shard's reader that stops inside a group is kept here (a few per process, newest first), and the next shard of
that group that begins at or after where it stopped takes it, decoding only the rows in between; a shard whose
group another shard is still reading up to where it begins (an actor's shards run at once) waits for that reader.
A taken reader is its shard's alone; a file whose footer differs from the one a reader was opened on (rewritten
since) never reuses it.

    with reading(file, parquet, group, first, batch_size) as cursor:
        for batch in cursor.rows(first, stop): ...
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

KEPT = 4  # readers kept per process: each holds a decode buffer and at most one batch of decoded rows
WAIT_S = 5.0  # longest wait for another shard's reader of the same group to come back


class Cursor:
    """A reader of one row group of `parquet`, at group row `position` (rows before it are read or skipped)."""

    def __init__(self, parquet: pq.ParquetFile, group: int, batch_size: int):
        self.parquet, self.group, self.batch_size = parquet, group, batch_size
        self.position = 0
        self.target = 0  # where its current reader stops (position, once it is done)
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
        self._changed = threading.Condition()
        self._cursors: list[tuple[str, Cursor]] = []  # free, newest last
        self._busy: list[tuple[str, Cursor]] = []  # taken by a shard's reading

    @contextlib.contextmanager
    def reading(self, file: str, parquet: pq.ParquetFile, group: int, first: int, stop: int, batch_size: int,
                wait_s: float = WAIT_S) -> Iterator[Cursor]:  # fmt: skip
        """A reader of `group` of `file` at or before group row `first`, for the block to read rows [first, stop):
        the kept one furthest along (same footer, same batch size), else a new one on `parquet`. Where another
        shard is reading that group up to at most `first` (shards of one actor run at once), its reader is
        waited for, up to wait_s. Kept again afterwards unless the block raised or the group is read to its end."""
        cursor = self._take(file, parquet, group, (first, stop), batch_size, time.monotonic() + wait_s)
        kept = False
        try:
            yield cursor
            kept = not cursor.done
            cursor.target = cursor.position
        finally:
            with self._changed:
                self._busy = [(f, c) for f, c in self._busy if c is not cursor]
                if kept:
                    self._cursors.append((file, cursor))
                    del self._cursors[:-KEPT]
                self._changed.notify_all()

    def _take(self, file: str, parquet: pq.ParquetFile, group: int, rows: tuple[int, int], batch_size: int,
              deadline: float) -> Cursor:  # fmt: skip
        first, stop = rows

        def heading(cursors: list[tuple[str, Cursor]]) -> list[tuple[int, int]]:
            """(position, index) of the cursors that are or will stop at most at `first`, furthest first."""
            return sorted(((c.position, i) for i, (f, c) in enumerate(cursors)
                           if (f, c.group, c.batch_size) == (file, group, batch_size) and c.target <= first),
                          reverse=True)  # fmt: skip

        with self._changed:
            while True:
                for _, i in heading(self._cursors):
                    cursor = self._cursors[i][1]
                    if cursor.parquet.metadata.equals(parquet.metadata):
                        del self._cursors[i]
                        break
                else:
                    left = deadline - time.monotonic()
                    if heading(self._busy) and left > 0 and self._changed.wait(left):
                        continue
                    cursor = Cursor(parquet, group, batch_size)
                cursor.target = stop
                self._busy.append((file, cursor))
                return cursor

    def clear(self) -> None:
        with self._changed:
            self._cursors.clear()


KEPT_CURSORS = _Kept()
reading, clear = KEPT_CURSORS.reading, KEPT_CURSORS.clear
