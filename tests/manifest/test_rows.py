import numpy as np
import pytest

from batchvoc.errors import RowError
from batchvoc.manifest import find_manifest_files, plan_shards, read_shard_rows
from batchvoc.manifest.rows import check_id
from tests.conftest import mel_rows, write_manifest

N_MELS = 4


def _read(path, n_mels=N_MELS):
    (shard,) = plan_shards(find_manifest_files(path), target_frames=10**9)
    return list(read_shard_rows(shard, n_mels))


def test_good_inline_rows_come_back_as_mels(tmp_path):
    rows = mel_rows(5, N_MELS, frames=[3, 7, 1, 9, 4])
    out = _read(write_manifest(tmp_path / "m.parquet", rows, row_group_size=2))
    assert [r.index for r in out] == list(range(5))
    for row, want in zip(out, rows, strict=True):
        assert row.error is None and row.id == want["id"]
        np.testing.assert_array_equal(row.mel, want["mel"].reshape(N_MELS, want["n_frames"]))


def test_float16_mels_are_read_as_float32(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    mel = np.arange(8, dtype=np.float16)
    table = pa.table({"id": ["a"], "mel": pa.array([mel], pa.list_(pa.float16())), "n_frames": [2]})
    pq.write_table(table, tmp_path / "h.parquet")
    (row,) = _read(tmp_path / "h.parquet")
    assert row.mel.dtype == np.float32 and row.mel.shape == (N_MELS, 2)


def test_bad_inline_rows_get_reasons_and_good_rows_survive(tmp_path):
    rows = mel_rows(7, N_MELS, frames=5)
    rows[1]["n_mels"] = 80  # declared wrong
    rows[2]["mel"] = rows[2]["mel"][:-4]  # one mel band short, no n_mels declared
    rows[2]["n_mels"] = None
    rows[3]["mel"] = rows[3]["mel"].copy()
    rows[3]["mel"][2] = np.nan
    rows[4]["n_frames"], rows[4]["mel"] = 0, np.zeros(0, np.float32)
    rows[5]["id"] = "../x"
    rows[6]["mel"] = None
    out = _read(write_manifest(tmp_path / "m.parquet", rows))
    reasons = {r.index: r.error for r in out}
    assert reasons[0] is None
    assert "n_mels is 80" in reasons[1]
    assert "wrong n_mels" in reasons[2]
    assert "NaN" in reasons[3]
    assert "no frames" in reasons[4]
    assert "'..'" in reasons[5]
    assert "null" in reasons[6]


def test_mel_path_rows(tmp_path):
    folder = tmp_path / "data"
    (folder / "mels").mkdir(parents=True)
    np.save(folder / "mels" / "good.npy", np.ones((N_MELS, 6), np.float32))
    np.save(folder / "mels" / "batched.npy", np.ones((1, N_MELS, 3), np.float32))
    np.save(folder / "mels" / "wrong.npy", np.ones((80, 6), np.float32))
    np.save(tmp_path / "outside.npy", np.ones((N_MELS, 6), np.float32))
    (folder / "mels" / "junk.npy").write_text("junk")
    paths = ["mels/good.npy", "mels/batched.npy", "mels/wrong.npy", "../outside.npy", "mels/none.npy",
             "mels/junk.npy", str(folder / "mels" / "good.npy")]  # fmt: skip
    rows = [dict(id=f"r{i}", mel_path=p) for i, p in enumerate(paths)]
    out = _read(write_manifest(folder / "m.parquet", rows))
    reasons = [r.error for r in out]
    assert reasons[0] is None and out[0].mel.shape == (N_MELS, 6)
    assert reasons[1] is None and out[1].mel.shape == (N_MELS, 3)
    assert "80 mel bands" in reasons[2]
    assert "leaves the manifest's folder" in reasons[3]
    assert "does not exist" in reasons[4]
    assert "not a readable .npy" in reasons[5]
    assert reasons[6] is None  # an absolute path is the user's explicit choice


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "..", "a//b", "./a", "a\x00b", "C:evil", "x" * 300])
def test_unsafe_ids_are_refused(bad):
    with pytest.raises(RowError):
        check_id(bad)


@pytest.mark.parametrize("good", ["utt1", "spk/utt1", "a.b-c_d", "ünïcode"])
def test_safe_ids_pass(good):
    check_id(good)
