import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchvoc.errors import ConfigError
from batchvoc.manifest import check_schema, find_manifest_files
from batchvoc.manifest.conventions import MelChecks
from batchvoc.manifest.schema import declared_values, output_overlap, refuse_if_every_row_declares_wrong
from tests.conftest import mel_rows, write_manifest


def test_file_folder_and_glob(tmp_path):
    a = write_manifest(tmp_path / "d" / "a.parquet", mel_rows(2, 4))
    b = write_manifest(tmp_path / "d" / "sub" / "b.parquet", mel_rows(2, 4))
    assert find_manifest_files(a) == [str(a.resolve())]
    assert find_manifest_files(tmp_path / "d") == [str(a.resolve()), str(b.resolve())]
    assert find_manifest_files(str(tmp_path / "d" / "*.parquet")) == [str(a.resolve())]


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


def test_empty_parts_are_skipped_with_a_warning_naming_them(tmp_path, caplog):
    from batchvoc.manifest import check_manifest_files

    good = write_manifest(tmp_path / "d" / "a_good.parquet", mel_rows(2, 4))
    bare = tmp_path / "d" / "b_bare.parquet"
    pq.write_table(pa.table({}), bare)  # 0 rows, 0 columns
    typed = write_manifest(tmp_path / "d" / "c_typed.parquet", mel_rows(2, 4)).with_name("c_typed.parquet")
    pq.write_table(pq.read_table(typed).slice(0, 0), typed)  # 0 rows, the manifest's columns
    odd = tmp_path / "d" / "d_odd.parquet"
    pq.write_table(pa.table({"x": pa.array([], pa.int8())}), odd)  # 0 rows, columns of something else
    with caplog.at_level("WARNING"):
        assert check_manifest_files(find_manifest_files(tmp_path / "d")) == [str(good.resolve())]
    for path in (bare, typed, odd):
        assert str(path.resolve()) in caplog.text


def test_a_manifest_with_no_rows_at_all_is_a_config_error(tmp_path):
    from batchvoc.manifest import check_manifest_files

    pq.write_table(pa.table({}), tmp_path / "a.parquet")
    write_manifest(tmp_path / "b.parquet", [])
    with pytest.raises(ConfigError, match="no rows") as err:
        check_manifest_files(find_manifest_files(tmp_path))
    assert err.value.key == "input.manifest"


def test_ids_must_be_strings_or_integers(tmp_path):
    path = tmp_path / "floats.parquet"
    pq.write_table(pa.table({"id": [1.5], "mel_path": ["a.npy"]}), path)
    with pytest.raises(ConfigError, match="'id' must hold strings or integers"):
        check_schema(path)
    for ids in (pa.array([1], pa.uint64()), pa.array(["a"], pa.large_string()), pa.array(["a"]).dictionary_encode()):
        pq.write_table(pa.table({"id": ids, "mel_path": ["a.npy"]}), path)
        check_schema(path)


def test_number_and_path_columns_must_have_their_types(tmp_path):
    path = tmp_path / "m.parquet"
    for table, column in [
        (pa.table({"id": ["a"], "mel": [[1.0]], "n_frames": [[1]]}), "n_frames"),
        (pa.table({"id": ["a"], "mel_path": ["a.npy"], "sample_rate": [True]}), "sample_rate"),
        (pa.table({"id": ["a"], "mel_path": [3]}), "mel_path"),
    ]:
        pq.write_table(table, path)
        with pytest.raises(ConfigError, match=column):
            check_schema(path)


def test_float_n_frames_with_nan_plans_and_reads_per_row(tmp_path):
    import numpy as np

    from batchvoc.manifest import plan_shards, read_shard_rows

    mels = [np.full(8, -5.0, np.float32)] * 3
    pq.write_table(pa.table({"id": ["a", "b", "c"], "mel": mels, "n_frames": [2.0, float("nan"), 2.5]}),
                   tmp_path / "m.parquet")  # fmt: skip
    (shard,) = plan_shards([tmp_path / "m.parquet"], 10**9)
    rows = list(read_shard_rows(shard, 4))
    assert rows[0].error is None and rows[0].mel.shape == (4, 2)
    assert "n_frames is nan" in rows[1].error and "n_frames is 2.5" in rows[2].error


def test_numbers_stored_as_text_are_parsed_per_row(tmp_path):
    import numpy as np

    from batchvoc.manifest import plan_shards, read_shard_rows
    from batchvoc.manifest.conventions import MelChecks

    mels = [np.full(8, -5.0, np.float32)] * 3
    table = pa.table({"id": ["a", "b", "c"], "mel": mels, "n_frames": ["2", "2", "two"],
                      "sample_rate": ["22050", "16000", "22050"]})  # fmt: skip
    pq.write_table(table, tmp_path / "m.parquet")
    check_schema(tmp_path / "m.parquet")
    (shard,) = plan_shards([tmp_path / "m.parquet"], 10**9)
    rows = list(read_shard_rows(shard, MelChecks(4, rates=((22050, 256),), mode="off")))
    assert rows[0].error is None and "sample_rate is 16000" in rows[1].error and "n_frames is two" in rows[2].error


def _declaring(tmp_path, name, values, **write):
    """A manifest file whose rows declare n_mels `values` (None: a null), 4-band mels of 3 frames."""
    rows = mel_rows(len(values), 4, frames=3, prefix=name)
    for row, value in zip(rows, values, strict=True):
        row["n_mels"] = value
    path = tmp_path / f"{name}.parquet"
    table = pa.Table.from_pylist(
        [dict(id=r["id"], mel=r["mel"], n_frames=r["n_frames"], n_mels=r["n_mels"]) for r in rows],
        schema=pa.schema(
            [("id", pa.string()), ("mel", pa.list_(pa.float32())), ("n_frames", pa.int32()), ("n_mels", pa.int32())]
        ),  # fmt: skip
    )
    pq.write_table(table, path, row_group_size=4, **write)
    return str(path)


def test_a_manifest_whose_every_row_declares_another_band_count_is_refused_from_its_footers(tmp_path):
    checks = MelChecks(n_mels=80)
    one = _declaring(tmp_path, "a", [100] * 9)
    with pytest.raises(ConfigError) as err:
        refuse_if_every_row_declares_wrong([one], checks.check_declared)
    assert err.value.key == "input.manifest" and "every row: n_mels is 100, the model takes 80" in err.value.message
    two = _declaring(tmp_path, "b", [128] * 5)
    with pytest.raises(ConfigError, match="every row declares n_mels 100 or 128: n_mels is 100"):
        refuse_if_every_row_declares_wrong([one, two], checks.check_declared)


@pytest.mark.parametrize("case", ["some_right", "a_null", "no_statistics", "no_column"])
def test_where_some_row_may_be_right_the_rows_decide(tmp_path, case):
    checks = MelChecks(n_mels=80)
    if case == "no_column":
        path = str(write_manifest(tmp_path / "m.parquet", [{k: v for k, v in r.items() if k != "n_mels"}
                                                            for r in mel_rows(3, 4, frames=3)]))  # fmt: skip
    else:
        values = {"some_right": [100] * 8 + [80], "a_null": [100] * 8 + [None], "no_statistics": [100] * 9}[case]
        write = {"write_statistics": False} if case == "no_statistics" else {}
        path = _declaring(tmp_path, "m", values, **write)
    assert declared_values([path])["n_mels"] is None or case == "some_right"
    refuse_if_every_row_declares_wrong([path], checks.check_declared)


def test_what_output_dir_holds_is_never_listed_as_input(tmp_path):
    """output.dir inside the manifest's folder: nothing under it is input (a rerun lists what the first run did)."""
    folder = tmp_path / "in"
    a = write_manifest(folder / "a.parquet", mel_rows(2, 80))
    write_manifest(folder / "out" / "manifest" / "good.r0-2.parquet", mel_rows(2, 80))  # a first run's output
    write_manifest(folder / "out" / "other.parquet", mel_rows(2, 80))
    expected = [str(a.resolve())]
    for spec in (folder, f"{folder}/*.parquet", f"{folder}/**/*.parquet"):
        assert find_manifest_files(spec, folder / "out") == expected
        assert find_manifest_files(spec, str(folder / "out") + "/") == expected
        assert "nothing under output.dir is read as input" in output_overlap(spec, folder / "out")
    assert len(find_manifest_files(folder)) == 3  # without an output.dir: everything
    assert output_overlap(folder, tmp_path / "elsewhere") is None
    assert find_manifest_files(folder, tmp_path / "elsewhere") == find_manifest_files(folder)


def test_a_manifest_inside_output_dir_is_read_unless_the_job_writes_it(tmp_path):
    out = tmp_path / "out"
    a = write_manifest(out / "a.parquet", mel_rows(2, 80))
    mels = write_manifest(out / "mels" / "b.parquet", mel_rows(2, 80))
    write_manifest(out / "manifest" / "good.r0-2.parquet", mel_rows(2, 80))
    assert find_manifest_files(out, out) == [str(a.resolve()), str(mels.resolve())]  # its own outputs left out
    assert find_manifest_files(out / "mels", out) == [str(mels.resolve())]
    assert "the job's own outputs there are not read as input" in output_overlap(out, out)
    for spec in (out / "manifest", out / "manifest" / "good.r0-2.parquet", f"{out}/manifest/*.parquet"):
        with pytest.raises(ConfigError, match=r"^input\.manifest: .* lies in manifest/ of output\.dir .* writes"):
            find_manifest_files(spec, out)


def test_output_dir_is_left_out_of_an_fsspec_listing_too(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    root = f"/batchvoc-test-{tmp_path.name}"
    table = pa.table({"id": ["x"], "mel": pa.array([[0.0] * 80], pa.list_(pa.float32())), "n_frames": [1]})
    for name in ("in/a.parquet", "in/out/manifest/good.r0-1.parquet"):
        with fs.open(f"{root}/{name}", "wb") as handle:
            pq.write_table(table, handle)
    try:
        listed = find_manifest_files(f"memory://{root}/in", f"memory://{root}/in/out")
        assert listed == [f"memory://{root}/in/a.parquet"]
        assert len(find_manifest_files(f"memory://{root}/in")) == 2
    finally:
        fs.rm(root, recursive=True)
