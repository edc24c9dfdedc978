import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchvoc.errors import ConfigError
from batchvoc.manifest import check_schema, find_manifest_files
from tests.conftest import mel_rows, write_manifest


def test_file_folder_and_glob(tmp_path):
    a = write_manifest(tmp_path / "d" / "a.parquet", mel_rows(2, 4))
    b = write_manifest(tmp_path / "d" / "sub" / "b.parquet", mel_rows(2, 4))
    assert find_manifest_files(a) == [a.resolve()]
    assert find_manifest_files(tmp_path / "d") == [a.resolve(), b.resolve()]
    assert find_manifest_files(str(tmp_path / "d" / "*.parquet")) == [a.resolve()]


@pytest.mark.parametrize("spec", [None, "", "/nonexistent/x.parquet"])
def test_missing_manifest_names_the_key(spec):
    with pytest.raises(ConfigError) as err:
        find_manifest_files(spec)
    assert err.value.key == "input.manifest"


def test_schema_errors_name_the_column(tmp_path):
    no_id = tmp_path / "no_id.parquet"
    pq.write_table(pa.table({"mel_path": ["a.npy"]}), no_id)
    with pytest.raises(ConfigError, match="'id'"):
        check_schema(no_id)
    no_frames = tmp_path / "no_frames.parquet"
    pq.write_table(pa.table({"id": ["a"], "mel": pa.array([[1.0]], pa.list_(pa.float32()))}), no_frames)
    with pytest.raises(ConfigError, match="n_frames"):
        check_schema(no_frames)
    strings = tmp_path / "strings.parquet"
    pq.write_table(pa.table({"id": ["a"], "mel": [["x"]], "n_frames": [1]}), strings)
    with pytest.raises(ConfigError, match="list<float32>"):
        check_schema(strings)
    neither = tmp_path / "neither.parquet"
    pq.write_table(pa.table({"id": ["a"]}), neither)
    with pytest.raises(ConfigError, match="mel_path"):
        check_schema(neither)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("not parquet")
    with pytest.raises(ConfigError, match="not a readable Parquet"):
        check_schema(garbage)
