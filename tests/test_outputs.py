"""Outputs other tools read, from real jobs on the local Ray: datasets / pandas across shards, lhotse."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from batchvoc.errors import ConfigError
from batchvoc.outputs import conform, passthrough_schema
from batchvoc.runner.driver import run_job
from batchvoc.settings import JobSettings
from tests.conftest import mel_rows
from tests.jobs import small_job


def write_part(path, rows, extra: dict, int_ids: bool = False):
    """A manifest file with inline mels and the given pass-through columns (arrays or pyarrow arrays)."""
    ids = pa.array(list(range(len(rows))), pa.int64()) if int_ids else pa.array([r["id"] for r in rows])
    columns = {"id": ids, "mel": pa.array([r["mel"] for r in rows], pa.list_(pa.float32())),
               "n_frames": pa.array([r["n_frames"] for r in rows], pa.int32()), **extra}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=3)
    return path


def mixed_manifest(folder):
    """Three parts whose pass-through columns differ the way real corpora do: a column only some parts have,
    one all null in a part, int32 in one part and int64 in another, a categorical, names that clash with the output
    manifest's and with their renaming (status, input_status); and bad rows."""
    rows = mel_rows(15, 80, frames=[6 + i % 5 for i in range(15)])
    rows[4]["n_frames"] = 0  # no frames: an error row
    rows[11]["mel"] = rows[11]["mel"][:-80]  # too few values: an error row
    write_part(folder / "a.parquet", rows[:6], {"speaker": ["s1"] * 6, "score": pa.nulls(6), "status": ["raw"] * 6,
                                                "age": pa.array([30] * 6, pa.int32())})  # fmt: skip
    write_part(folder / "b.parquet", rows[6:12], {"speaker": pa.array(["s2"] * 6).dictionary_encode(),
                                                  "score": pa.array([0.5] * 6), "text": ["hi"] * 6,
                                                  "age": pa.array([40] * 6, pa.int64()),
                                                  "input_status": ["old"] * 6})  # fmt: skip
    write_part(folder / "c.parquet", rows[12:], {"note": pa.nulls(3)}, int_ids=True)
    return rows


def job(tmp_path, **kw) -> JobSettings:
    return small_job(tmp_path, **{"batch": 4, "cpu_actors": 1, "shard_seconds": 0.25, **kw})


def test_output_manifest_opens_with_datasets_and_pandas(tmp_path, ray_cluster):
    datasets = pytest.importorskip("datasets")
    pd = pytest.importorskip("pandas")
    mixed_manifest(tmp_path / "in")
    settings = job(tmp_path)
    assert run_job(settings).exit_code == 2
    parts = sorted((settings.out_path / "manifest").glob("*.parquet"))
    assert len(parts) >= 5
    schemas = {str(pq.read_schema(p).remove_metadata()) for p in parts}
    assert len(schemas) == 1, schemas  # every shard: the same columns, in the same order, of the same types

    ds = datasets.load_dataset("parquet", data_files=[str(p) for p in parts], split="train",
                               cache_dir=str(tmp_path / "hf"))  # fmt: skip
    assert ds.num_rows == 15
    by_id = {row["id"]: row for row in ds}
    assert by_id["utt_0007"]["score"] == 0.5 and by_id["utt_0000"]["score"] is None
    assert by_id["utt_0008"]["text"] == "hi" and by_id["utt_0001"]["text"] is None
    assert by_id["utt_0000"]["age"] == 30 and by_id["utt_0007"]["age"] == 40
    assert by_id["utt_0007"]["speaker"] == "s2" and by_id["0"]["speaker"] is None  # int ids: decimal strings
    assert by_id["utt_0004"]["status"] == "error" and by_id["utt_0004"]["path"] is None
    assert ds.features["age"].dtype == "int64" and ds.features["peak"].dtype == "float32"
    # input status and input_status: input_input_status and input_status, one column each
    assert by_id["utt_0000"]["input_input_status"] == "raw" and by_id["utt_0000"]["input_status"] is None
    assert by_id["utt_0007"]["input_status"] == "old" and by_id["utt_0007"]["input_input_status"] is None
    names = pq.read_table(settings.out_path / "manifest").column_names  # the folder, as pyarrow users open it
    assert len(set(names)) == len(names) and "input_input_status" in names

    frame = pd.read_parquet(settings.out_path / "manifest")  # the folder, as pandas users open it
    assert len(frame) == 15 and (frame["status"] == "ok").sum() == 13
    assert frame["n_samples"].dtype == np.int64 and frame["sample_rate"].eq(22050).all()
    # clipped: an integer column, null (pd.NA) only where a row has no audio; not float64
    assert frame["clipped"].dtype == pd.Int64Dtype() and ds.features["clipped"].dtype == "int64"
    assert frame["clipped"].isna().equals(frame["status"] == "error") and (frame["clipped"].dropna() >= 0).all()
    frame = pd.concat([pd.read_parquet(p) for p in parts])
    assert list(frame.columns) == pq.read_schema(parts[0]).names


def test_pass_through_types_that_cannot_be_unified_stop_before_any_work(tmp_path):
    rows = mel_rows(4, 80, frames=5)
    write_part(tmp_path / "a.parquet", rows[:2], {"speaker": ["s1", "s2"]})
    write_part(tmp_path / "b.parquet", rows[2:], {"speaker": pa.array([1, 2], pa.int64())})
    with pytest.raises(ConfigError, match="column 'speaker' is string in .*a.parquet but int64 in .*b.parquet"):
        passthrough_schema([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    schema = passthrough_schema([tmp_path / "a.parquet"])
    table = conform(pa.table({"speaker": pa.array(["x"]).dictionary_encode(), "other": [1]}), schema)
    assert table.schema == schema and table.column("n_frames").null_count == 1


def test_lhotse_recording_set_loads_back(tmp_path, ray_cluster):
    lhotse = pytest.importorskip("lhotse")
    mixed_manifest(tmp_path / "in")
    settings = job(tmp_path, subtype="FLOAT", lhotse=True)
    run_job(settings)
    recordings = lhotse.load_manifest(settings.out_path / "recordings.jsonl.gz")
    assert isinstance(recordings, lhotse.RecordingSet)
    ok = [r for p in (settings.out_path / "manifest").glob("*.parquet") for r in pq.read_table(p).to_pylist()
          if r["status"] == "ok"]  # fmt: skip
    assert len(recordings) == len(ok) == 13
    for row in ok:
        recording = recordings[row["id"]]
        assert recording.sampling_rate == 22050 and recording.num_samples == row["n_samples"]
        expected, _ = sf.read(settings.out_path / row["path"], dtype="float32")
        np.testing.assert_array_equal(recording.load_audio()[0], expected)
