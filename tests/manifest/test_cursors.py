"""Shards of one row group continue each other's readers: the rows, ids and pass-through columns are the same in any
order as with a fresh reader per shard, a reader goes on from where the last shard stopped, and a rewritten file
is read anew."""

from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from batchvoc.manifest import cursors, find_manifest_files, plan_shards
from batchvoc.manifest.rows import READ_ROWS, read_batches
from batchvoc.storage import parquet_file
from tests.conftest import mel_rows, write_manifest

N_MELS = 4


def read_all(shard) -> tuple[list, pa.Table]:
    rows, tables = [], []
    for table, batch in read_batches(shard, N_MELS):
        rows += [(r.index, r.id, None if r.mel is None else r.mel.tobytes(), r.error) for r in batch]
        tables.append(table)
    return rows, pa.concat_tables(tables).combine_chunks()


@pytest.fixture
def shards(tmp_path):
    """Shards of about 7 rows (not a multiple of READ_ROWS) of one row group of 60 rows, then a second group."""
    rows = mel_rows(90, N_MELS, frames=[3 + i % 5 for i in range(90)])
    path = write_manifest(tmp_path / "m.parquet", rows, row_group_size=60)
    planned = plan_shards(find_manifest_files(path), 7 * 5)
    assert len(planned) > 8 and any(s.start % READ_ROWS for s in planned)
    return planned


@pytest.mark.parametrize("order", ["forward", "backward", "shuffled"])
def test_shards_read_alike_in_any_order(shards, order):
    cursors.clear()
    fresh = {}
    for shard in shards:
        fresh[shard.name] = read_all(shard)
        cursors.clear()
    sequence = {"forward": shards, "backward": shards[::-1]}.get(order)
    if sequence is None:
        sequence = [shards[i] for i in np.random.default_rng(5).permutation(len(shards))]
    for shard in sequence:
        rows, table = read_all(shard)
        assert rows == fresh[shard.name][0] and table.equals(fresh[shard.name][1]), shard.name
    cursors.clear()


def test_a_shard_goes_on_with_the_reader_the_one_before_it_left(shards):
    cursors.clear()
    first, second = shards[0], shards[1]
    assert second.start == first.stop and second.row_groups == first.row_groups == (0,)
    read_all(first)
    parquet = parquet_file(second.file)
    with cursors.reading(second.file, parquet, 0, second.start, second.stop, READ_ROWS) as cursor:
        assert cursor.position == first.stop and cursor.parquet is not parquet
        with cursors.reading(second.file, parquet, 0, second.start, second.stop, READ_ROWS, wait_s=0.01) as other:
            assert other.position == 0  # the one kept is taken
        with pytest.raises(ValueError, match="cannot go back"):
            next(cursor.rows(first.start, first.stop))
    cursors.clear()


def test_a_shard_waits_for_the_reader_of_the_shard_before_it_still_reading(shards):
    """Shards of one actor run at once: the second waits for the first's reader instead of decoding its rows."""
    cursors.clear()
    first, second = shards[0], shards[1]
    expected = read_all(second)
    cursors.clear()
    reading_first = read_batches(first, N_MELS)
    next(reading_first)  # the first shard holds the group's reader, mid-way
    got, finished = {}, {}

    def read_second():
        got["rows"] = read_all(second)
        got["at"] = time.monotonic()

    thread = threading.Thread(target=read_second)
    thread.start()
    time.sleep(0.2)
    assert "rows" not in got  # waiting
    finished["at"] = time.monotonic()
    for _ in reading_first:
        pass
    thread.join()
    assert got["at"] >= finished["at"] and got["rows"][0] == expected[0] and got["rows"][1].equals(expected[1])
    cursors.clear()


def test_a_rewritten_file_is_read_anew(tmp_path):
    cursors.clear()
    path = write_manifest(tmp_path / "m.parquet", mel_rows(30, N_MELS, frames=4), row_group_size=30)
    shards = plan_shards(find_manifest_files(path), 4 * 10)
    read_all(shards[0])
    write_manifest(path, mel_rows(30, N_MELS, frames=4, seed=9), row_group_size=30)  # same shape, other values
    again = read_all(shards[1])
    cursors.clear()
    assert again == read_all(shards[1])
    expected = mel_rows(30, N_MELS, frames=4, seed=9)[shards[1].start]["mel"].tobytes()
    assert again[0][0][2] == expected
