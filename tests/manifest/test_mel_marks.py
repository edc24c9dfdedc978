"""The marks of mel_path rows' .npy files (batchvoc/manifest/mel_marks.py): what a rerun compares to tell a
mel rewritten since its row was vocoded."""

from __future__ import annotations

import os

import numpy as np

from batchvoc.manifest.mel_marks import MARK_KEY, changed_rows, shard_marks
from batchvoc.manifest.shards import Shard
from tests.conftest import mel_rows, write_manifest


def _shard(tmp_path, count: int) -> Shard:
    """One shard of `count` mel_path rows (mels/utt_NNNN.npy, the last one missing) in tmp_path/m.parquet."""
    rows = mel_rows(count, 80, frames=12, seed=1)
    (tmp_path / "mels").mkdir()
    for row in rows[:-1]:
        np.save(tmp_path / "mels" / f"{row['id']}.npy", row["mel"].reshape(80, 12))
    write_manifest(tmp_path / "m.parquet", [dict(id=r["id"], mel_path=f"mels/{r['id']}.npy") for r in rows])
    return Shard("m.r0", str(tmp_path / "m.parquet"), 0, count, (0,), 0, 12 * count)


def test_a_rewritten_or_newly_there_mel_is_a_change_and_a_deleted_one_is_not(tmp_path):
    shard = _shard(tmp_path, 4)
    marks = shard_marks(shard)
    assert sorted(marks) == ["utt_0000", "utt_0001", "utt_0002", "utt_0003"]
    assert marks["utt_0000"][0] == "mels/utt_0000.npy" and marks["utt_0003"][1] is None  # missing when taken
    stats = {shard.name: {MARK_KEY: marks}}
    assert changed_rows([shard], stats) == {}  # nothing touched
    mel = tmp_path / "mels" / "utt_0000.npy"
    np.save(mel, np.zeros((80, 12), np.float32))  # same size, other content: its modification time tells
    st = os.stat(mel)
    os.utime(mel, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    (tmp_path / "mels" / "utt_0001.npy").unlink()  # deleted once vocoded: its audio stays
    np.save(tmp_path / "mels" / "utt_0003.npy", np.zeros((80, 12), np.float32))  # there now: it failed before
    assert changed_rows([shard], stats) == {shard.name: ["utt_0000", "utt_0003"]}
    assert changed_rows([shard], {shard.name: {"rows": 4}}) == {}  # stats of an older batchvoc: no marks to compare


def test_a_manifest_of_inline_mels_has_no_marks(tmp_path):
    write_manifest(tmp_path / "m.parquet", mel_rows(2, 80, frames=12))
    assert shard_marks(Shard("m.r0", str(tmp_path / "m.parquet"), 0, 2, (0,), 0, 24)) == {}
