"""The read stage: the shard's Parquet rows, decoded one by one, with the file opened once.

Yields `MelRow`s in row order: a good row carries its mel [n_mels, n_frames] float32 (as stored: input.mel_scale
is the check stage's), a bad one its `error`, and a row whose audio a previous run already wrote neither (its
mel is not decoded). Declared sample_rate / hop_length / n_mels columns are checked here, where the columns
are. The columns other than `mel` are collected on the way, for the output manifest (`passthrough()` once the
rows are read); a row group that cannot be decoded fails its own rows (their pass-through columns null).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from batchvoc.errors import RowError
from batchvoc.manifest import MelRow, Shard
from batchvoc.manifest.conventions import MelChecks
from batchvoc.manifest.rows import check_id, read_batches


class ShardRead:
    """Reads `shard` once with `checks` (the worker's MelChecks, or n_mels); `written(id)` tells rows whose audio
    exists already (resume)."""

    def __init__(self, shard: Shard, checks: MelChecks | int, written: Callable[[str], bool]):
        checks = checks if isinstance(checks, MelChecks) else MelChecks(int(checks), mode="off")
        self.shard, self._written = shard, written
        self._decode = dataclasses.replace(checks, scale="ln", mode="off")  # conversion and conventions: check stage
        self._passthrough: list[pa.Table] = []
        self._schema: pa.Schema | None = None

    def rows(self) -> Iterator[MelRow]:
        """The shard's rows in order, a few at a time, so the first rows reach the device at once.

        Raises OSError / pyarrow errors only when the file itself cannot be opened (the shard's fault)."""
        for table, rows in read_batches(self.shard, self._decode, self._skip):
            if table is not None and self._schema is None:
                self._schema = table.schema
            self._passthrough.append(table if table is not None else self._nulls(len(rows)))
            yield from rows

    def passthrough(self) -> pa.Table:
        """The shard's columns other than `mel`, one row per input row (after `rows()` ran to its end)."""
        schema = self._pass_schema()
        if self._passthrough:
            return pa.concat_tables([t.cast(schema) if t.schema != schema else t for t in self._passthrough])
        return schema.empty_table()

    def _pass_schema(self) -> pa.Schema:
        if self._schema is None:  # only when no row group could be decoded: read the footer again for the columns
            full = pq.read_schema(self.shard.file)
            self._schema = pa.schema([full.field(n) for n in full.names if n != "mel"])
        return self._schema

    def _nulls(self, count: int) -> pa.Table:
        schema = self._pass_schema()
        return pa.table({f.name: pa.nulls(count, f.type) for f in schema}, schema=schema)

    def _skip(self, row: int, key) -> bool:
        try:
            check_id(key)
        except RowError:
            return False
        return self._written(str(key))
