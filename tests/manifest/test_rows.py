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
    rows = mel_rows(8, N_MELS, frames=5)
    rows[1]["n_mels"] = 80  # declared wrong
    rows[2]["mel"] = rows[2]["mel"][:-5]  # one mel band (5 frames) short, no n_mels declared
    rows[2]["n_mels"] = None
    rows[3]["mel"] = rows[3]["mel"].copy()
    rows[3]["mel"][2] = np.nan
    rows[4]["n_frames"], rows[4]["mel"] = 0, np.zeros(0, np.float32)
    rows[5]["id"] = "../x"
    rows[6]["mel"] = None
    rows[7]["mel"] = rows[7]["mel"][:-1]  # one value short: no count of bands fits
    out = _read(write_manifest(tmp_path / "m.parquet", rows))
    reasons = {r.index: r.error for r in out}
    assert reasons[0] is None
    assert "n_mels is 80" in reasons[1]
    assert "(3 mel bands of 5 frames? the model takes 4)" in reasons[2]
    assert "NaN" in reasons[3]
    assert "no frames" in reasons[4]
    assert "'..'" in reasons[5]
    assert reasons[6] == "mel is null"
    assert "holds 19 values, not n_mels x n_frames = 4 x 5 (wrong n_mels or n_frames?)" in reasons[7]


def test_a_null_mel_beside_a_mel_path_column_says_the_path_is_not_read(tmp_path):
    rows = mel_rows(2, N_MELS, frames=5)
    np.save(tmp_path / "a.npy", np.zeros((N_MELS, 5), np.float32))
    rows[0]["mel_path"], rows[1]["mel_path"] = None, "a.npy"
    rows[1]["mel"] = None
    out = _read(write_manifest(tmp_path / "m.parquet", rows))
    assert out[0].error is None
    assert out[1].error == "mel is null; mel_path is not read where a manifest has a mel column"


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
    assert "not a readable .npy" in reasons[5] and "allow_pickle" not in reasons[5]  # numpy's advice is not ours
    assert reasons[6] is None  # an absolute path is the user's explicit choice


def test_a_mel_path_rows_n_frames_is_checked_against_its_npy(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    np.save(tmp_path / "long.npy", np.full((N_MELS, 310), -5.0, np.float32))
    np.save(tmp_path / "short.npy", np.full((1, N_MELS, 7), -5.0, np.float32))  # size-1 axis squeezed: 7 frames
    rows = [("said_999", "long.npy", 999), ("right", "long.npy", 310), ("squeezed", "short.npy", 7),
            ("not_given", "short.npy", None), ("zero", "short.npy", 0)]  # fmt: skip
    ids, paths, frames = (list(column) for column in zip(*rows, strict=True))
    table = pa.table({"id": ids, "mel_path": paths, "n_frames": pa.array(frames, pa.int64()), "speaker": ids})
    pq.write_table(table, tmp_path / "m.parquet")
    out = _read(tmp_path / "m.parquet")
    assert [r.id for r in out] == ids
    assert out[0].mel is None and out[0].error == "n_frames is 999, mel_path 'long.npy' holds 310 frames"
    assert out[1].error is None and out[1].mel.shape == (N_MELS, 310)
    assert out[2].error is None and out[2].mel.shape == (N_MELS, 7)
    assert out[3].error is None and out[3].mel.shape == (N_MELS, 7)
    assert "n_frames is 0" in out[4].error


def test_a_nested_mels_n_frames_is_checked_the_same_way(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    mel = np.full((N_MELS, 310), -5.0, np.float32).tolist()
    table = pa.table({"id": ["said_999", "right"], "mel": pa.array([mel, mel], pa.list_(pa.list_(pa.float32()))),
                      "n_frames": [999, 310]})  # fmt: skip
    pq.write_table(table, tmp_path / "m.parquet")
    wrong, right = _read(tmp_path / "m.parquet")
    assert wrong.mel is None and wrong.error == "n_frames is 999, the nested mel holds 310 frames"
    assert right.error is None and right.mel.shape == (N_MELS, 310)


@pytest.mark.parametrize(
    "bad", ["", "/abs", "a/../b", "..", "a//b", "./a", "a\x00b", "C:evil", "x" * 300, "/".join(["p" * 199] * 25),
            "new\nline", "back\\slash", "\\abs", "a\tb", "a\rb", "del\x7f", "c1\x85", "c1\x9f", "esc\x1b[0m",
            "  ", "a/ /b", "\u3000"]
)
def test_unsafe_ids_are_refused(bad):
    with pytest.raises(RowError):
        check_id(bad)


def test_id_errors_tell_null_from_empty_and_name_the_row_and_file(tmp_path):
    """A null id and an empty one are told apart, and every error of the id check (null, empty, unsafe) names its
    row in its manifest file (counted from 0) and the file: the output manifest cannot say which row it was.
    The rows are read as several shards, so the numbers are the file's, not a shard's."""
    rows = mel_rows(7, N_MELS, frames=5)
    for i, key in [(2, None), (3, ""), (4, "a/../b"), (6, rows[0]["id"])]:
        rows[i]["id"] = key
    path = write_manifest(tmp_path / "m.parquet", rows, row_group_size=2)
    shards = plan_shards(find_manifest_files(path), target_frames=10)
    assert len(shards) > 2
    errors = {shard.start + row.index: row.error for shard in shards for row in read_shard_rows(shard, N_MELS)}
    place = f"row {{}} of {path}"
    assert errors[2] == f"id is null ({place.format(2)})"
    assert errors[3] == f"id is empty ({place.format(3)})"
    assert errors[4] == f"id 'a/../b' leaves the output folder ('..') ({place.format(4)})"
    earlier = f"appears earlier in the manifest, at {place.format(0)} ({place.format(6)})"
    assert errors[6] == f"id {rows[0]['id']!r} {earlier}"
    assert [errors[i] for i in (0, 1, 5)] == [None] * 3


@pytest.mark.parametrize("bad, code", [("new\nline", "000A"), ("nul\x00", "0000"), ("a\x1fb", "001F"),
                                       ("del\x7f", "007F"), ("c1\x80", "0080"), ("c1\x9f", "009F"),
                                       ("line\u2028sep", "2028"), ("para\u2029sep", "2029"),
                                       ("txt.\u202egnp", "202E"), ("iso\u2066late", "2066")])
def test_a_control_character_is_named_in_a_one_line_reason(bad, code):
    with pytest.raises(RowError) as err:
        check_id(bad)
    assert str(err.value) == (f"id {bad!r} holds a control character (U+{code}): ids name audio files, whose names "
                              "hold none")  # fmt: skip
    assert str(err.value).isprintable()


def test_a_backslash_is_refused_not_read_as_a_folder():
    with pytest.raises(RowError) as err:
        check_id("back\\slash")
    assert str(err.value) == ("id 'back\\\\slash' holds a backslash (U+005C): a folder separator on Windows, a "
                              "character of the name elsewhere; use '/' for folders")  # fmt: skip
    long = "x" * 2000 + "\n"  # over MAX_ID_BYTES: the reason quotes its start
    with pytest.raises(RowError, match=r"^id 'x{40}'\.\.\. holds a control character \(U\+000A\)"):
        check_id(long)


def test_rows_with_unsafe_ids_fail_alone_and_a_null_id_stays_null(tmp_path):
    """Read from real Parquet: a newline, a backslash, a C1 control character in an id fail their own rows with a
    one-line reason naming the row; a null id's row keeps a null id (shown as `null`, never as ''); the rest read."""
    from batchvoc.manifest.rows import shown_id

    rows = mel_rows(6, N_MELS, frames=5)
    for i, key in [(1, "new\nline"), (2, "back\\slash"), (3, "c1\x85"), (4, None)]:
        rows[i]["id"] = key
    path = write_manifest(tmp_path / "m.parquet", rows)
    out = _read(path)
    assert [r.error is None for r in out] == [True, False, False, False, False, True]
    assert out[1].error.startswith("id 'new\\nline' holds a control character (U+000A): ")
    assert out[2].error.startswith("id 'back\\\\slash' holds a backslash (U+005C): ")
    assert out[3].error.startswith("id 'c1\\x85' holds a control character (U+0085): ")
    for row in out[1:4]:
        assert row.error.endswith(f"(row {row.index} of {path})") and row.error.isprintable(), row.error
    assert out[4].id is None and out[4].error == f"id is null (row 4 of {path})"
    assert [shown_id(r.id) for r in out] == [rows[0]["id"], "'new\\nline'", "back\\slash", "'c1\\x85'", "null",
                                             rows[5]["id"]]  # fmt: skip
    assert shown_id("") == "''"  # an empty id, or a row of a row group that could not be decoded
    assert [shown_id(k) for k in (" ", "null", "nullable")] == ["' '", "'null'", "nullable"]  # never read as null


def test_check_id_tells_null_from_empty():
    with pytest.raises(RowError, match="^id is null$"):
        check_id(None)
    with pytest.raises(RowError, match="^id is empty$"):
        check_id("")


@pytest.mark.parametrize("good", ["utt1", "spk/utt1", "a.b-c_d", "ünïcode", "/".join(["p" * 199] * 5)])
def test_safe_ids_pass(good):
    check_id(good)


@pytest.mark.parametrize("kind", ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"])
def test_integer_ids_become_their_decimal_string(tmp_path, kind):
    import pyarrow as pa
    import pyarrow.parquet as pq

    mels = [np.full(N_MELS * 2, -5.0, np.float32)] * 3
    table = pa.table({"id": pa.array([0, 7, 120], getattr(pa, kind)()), "mel": mels, "n_frames": [2, 2, 2]})
    pq.write_table(table, tmp_path / "ints.parquet")
    out = _read(tmp_path / "ints.parquet")
    assert [(r.id, r.error) for r in out] == [("0", None), ("7", None), ("120", None)]


@pytest.mark.parametrize("kind", ["large_string", "dictionary"])
def test_large_string_and_dictionary_ids(tmp_path, kind):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = pa.array(["a", "b", "a2"], pa.large_string())
    if kind == "dictionary":
        ids = pa.array(["a", "b", "a2"]).dictionary_encode()
    mels = [np.full(N_MELS, -5.0, np.float32)] * 3
    pq.write_table(pa.table({"id": ids, "mel": mels, "n_frames": [1, 1, 1]}), tmp_path / "m.parquet")
    assert [(r.id, r.error) for r in _read(tmp_path / "m.parquet")] == [("a", None), ("b", None), ("a2", None)]


@pytest.mark.parametrize("value_type", ["float16", "float32", "float64"])
@pytest.mark.parametrize("list_type", ["list_", "large_list"])
def test_float16_float64_and_large_list_mels(tmp_path, value_type, list_type):
    import pyarrow as pa
    import pyarrow.parquet as pq

    mel = np.linspace(-9, -1, N_MELS * 5)
    kind = getattr(pa, list_type)(getattr(pa, value_type)())
    table = pa.table({"id": ["a"], "mel": pa.array([mel.astype(value_type)], kind), "n_frames": [5]})
    pq.write_table(table, tmp_path / "m.parquet")
    (row,) = _read(tmp_path / "m.parquet")
    assert row.error is None and row.mel.dtype == np.float32 and row.mel.shape == (N_MELS, 5)
    np.testing.assert_allclose(row.mel.ravel(), mel, rtol=1e-3)


def test_float64_values_beyond_float32_are_a_row_error_naming_the_value(tmp_path):
    """1e300 is finite in float64 and only overflows when read as float32: the reason says so, with the first
    such value's frame and band (inline float64 lists and float64 .npy files alike); NaN stays NaN."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = mel_rows(3, N_MELS, frames=3)
    big = np.full((N_MELS, 3), -5.0)
    big[2, 2], big[3, 1] = 1e300, -1e300
    rows[1]["mel"] = big.ravel()
    rows[2]["mel"] = np.where(np.arange(N_MELS * 3) == 7, np.nan, -5.0)
    mels = pa.array([r["mel"].astype(np.float64) for r in rows], pa.list_(pa.float64()))
    table = pa.table({"id": [r["id"] for r in rows], "n_frames": [3, 3, 3], "mel": mels})
    pq.write_table(table, tmp_path / "m.parquet")
    out = _read(tmp_path / "m.parquet")
    assert out[0].error is None
    assert "2 values out of float32 range (e.g. 1e+300 at frame 2, band 2)" in out[1].error, out[1].error
    assert "NaN" not in out[1].error
    assert "1 NaN or Inf values" in out[2].error
    np.save(tmp_path / "big.npy", big)
    pq.write_table(pa.table({"id": ["n"], "mel_path": ["big.npy"]}), tmp_path / "npy.parquet")
    (row,) = _read(tmp_path / "npy.parquet")
    assert "out of float32 range" in row.error and "float64" in row.error, row.error
    assert row.error.startswith("mel_path 'big.npy' "), row.error  # a .npy row's reason names its file


def test_a_mel_path_rows_nan_values_name_its_npy(tmp_path):
    """The NaN/Inf and 0-frame reasons of a mel_path row name its .npy, as its other reasons do; inline: `mel`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    nan = np.full((N_MELS, 4), -5.0, np.float32)
    nan[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    pq.write_table(pa.table({"id": ["n"], "mel_path": ["nan.npy"]}), tmp_path / "npy.parquet")
    (row,) = _read(tmp_path / "npy.parquet")
    assert row.error == f"mel_path 'nan.npy' has 1 NaN or Inf values of {N_MELS * 4}", row.error


NPY_CASES = [
    ("n_mels_t", (N_MELS, 6), "float32", None),
    ("n_mels_t_1", (N_MELS, 6, 1), "float32", None),  # size-1 axes are squeezed, wherever they are
    ("1_n_mels_t", (1, N_MELS, 6), "float16", None),
    ("1_1_n_mels_t_1", (1, 1, N_MELS, 6, 1), "float64", None),
    ("t_n_mels", (6, N_MELS), "float32", "save mel.T"),
    ("2_n_mels_t", (2, N_MELS, 6), "float32", "not [n_mels, n_frames]"),
    ("n_mels", (N_MELS,), "float32", "not [n_mels, n_frames]"),
    ("zero_frames", (N_MELS, 0), "float32", "0 frames"),
    ("one_frame_1_n_mels_1", (1, N_MELS, 1), "float32", None),
    ("inner_1", (N_MELS, 1, 6), "float32", None),
    ("ints", (N_MELS, 6), "int16", "not float values"),
    ("scalar", (), "float32", "not [n_mels, n_frames]"),
]


@pytest.mark.parametrize("name, shape, dtype, reason", NPY_CASES, ids=[c[0] for c in NPY_CASES])
def test_npy_squeezes_size_1_axes_only_and_any_other_shape_is_a_row_error(tmp_path, name, shape, dtype, reason):
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "good.npy", np.full((N_MELS, 4), -5.0, np.float32))
    np.save(folder / f"{name}.npy", np.full(shape, -5, dtype))
    rows = [dict(id="before", mel_path="good.npy"), dict(id=name, mel_path=f"{name}.npy"),
            dict(id="after", mel_path="good.npy")]  # fmt: skip
    out = _read(write_manifest(folder / "m.parquet", rows))
    assert out[0].error is None and out[2].error is None
    if reason is None:
        frames = 1 if name.startswith("one_frame") else 6
        assert out[1].error is None and out[1].mel.shape == (N_MELS, frames) and out[1].mel.dtype == np.float32
    else:
        assert reason in out[1].error and out[1].mel is None


def test_object_arrays_and_pickles_are_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    rows = [dict(id="obj", mel_path="obj.npy")]
    (row,) = _read(write_manifest(tmp_path / "m.parquet", rows))
    assert "not a readable .npy" in row.error and "never loaded" in row.error and "unsafely" not in row.error


def test_zip_archives_named_as_such_and_the_rows_beside_them_read(tmp_path):
    import torch

    mel = np.full((N_MELS, 6), -5.0, np.float32)
    np.save(tmp_path / "good.npy", mel)
    np.savez(tmp_path / "mels.npz", mel=mel)
    torch.save(torch.from_numpy(mel), tmp_path / "mel.pt")
    names = ["good.npy", "mels.npz", "mel.pt"]
    out = _read(write_manifest(tmp_path / "m.parquet", [dict(id=n, mel_path=n) for n in names]))
    assert out[0].error is None and np.array_equal(out[0].mel, mel)
    for row in out[1:]:
        assert row.error == (f"mel_path {row.id!r} is a zip archive (an .npz or a torch.save file), not a .npy "
                             "array: save each mel with np.save"), row.error  # fmt: skip


def broken_npy_files(folder, n_mels: int = N_MELS) -> dict[str, str]:
    """Real broken .npy files in `folder` (and good.npy, [n_mels, 6]), by name -> words their reason must hold."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "good.npy", np.full((n_mels, 6), -5.0, np.float32))
    whole = (folder / "good.npy").read_bytes()
    (folder / "garbage.npy").write_bytes(b"not a numpy file")
    (folder / "empty.npy").write_bytes(b"")
    (folder / "short_data.npy").write_bytes(whole[:-10])  # header whole, array data cut
    (folder / "short_header.npy").write_bytes(whole[:20])  # cut inside the header
    np.save(folder / "objects.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    return {
        "garbage": "no .npy header (a corrupt or truncated file, or not .npy)",
        "empty": "no .npy header (a corrupt or truncated file, or not .npy)",
        "short_data": f"truncated: its header declares float32 [{n_mels}, 6], {n_mels * 6 * 4} bytes of data, "
        f"and the file holds {n_mels * 6 * 4 - 10}",
        "short_header": "its .npy header is damaged or cut short",
        "objects": "a .npy of Python objects (dtype object): numpy stores them as pickled objects, which are never "
        "loaded",
    }


def test_a_broken_npy_is_named_by_what_its_header_says(tmp_path):
    expected = broken_npy_files(tmp_path)
    rows = [dict(id=name, mel_path=f"{name}.npy") for name in ["good", *expected]]
    out = {row.id: row for row in _read(write_manifest(tmp_path / "m.parquet", rows))}
    assert out["good"].error is None
    for name, words in expected.items():
        reason = out[name].error
        assert reason.startswith(f"mel_path '{name}.npy' is not a readable .npy file: ") and words in reason, reason
        assert ("pickled" in reason) == (name == "objects"), reason  # only an object array is one of pickles


def test_declared_columns_and_conventions_are_checked_per_row(tmp_path, speech):
    from batchvoc.manifest.conventions import MelChecks
    from batchvoc.models.presets import get_preset
    from tests.speech import speech_mels

    preset = get_preset("hifigan_v1_universal")
    mel = speech_mels(speech, preset)[0]
    rows = [dict(id=f"r{i}", mel=m.ravel(), n_frames=m.shape[1], n_mels=80, sample_rate=sr)
            for i, (m, sr) in enumerate([(mel, "22050"), (mel / np.log(10), "22050"), (mel, "16000")])]  # fmt: skip
    (shard,) = plan_shards(find_manifest_files(write_manifest(tmp_path / "m.parquet", rows)), 10**9)
    out = list(read_shard_rows(shard, MelChecks.for_preset(preset)))
    assert out[0].error is None and np.array_equal(out[0].mel, mel)
    assert "log10" in out[1].error and "input.mel_scale=log10" in out[1].error
    assert "sample_rate is 16000" in out[2].error
    warned = list(read_shard_rows(shard, MelChecks.for_preset(preset, mode="warn")))
    assert warned[1].error is None and "log10" in warned[1].warning and warned[2].error is not None


def test_a_row_group_that_cannot_be_decoded_fails_its_own_rows_only(tmp_path):
    path = write_manifest(tmp_path / "m.parquet", mel_rows(6, N_MELS, frames=3), row_group_size=2)
    (shard,) = plan_shards(find_manifest_files(path), 10**9)
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata.row_group(1).column(1)  # the 'mel' column chunk of row group 1
    start = meta.dictionary_page_offset or meta.data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + meta.total_compressed_size] = b"\xff" * meta.total_compressed_size
    path.write_bytes(bytes(data))
    out = list(read_shard_rows(shard, N_MELS))
    assert [r.index for r in out] == list(range(6))
    assert [r.error is None for r in out] == [True, True, False, False, True, True]
    assert "row group 1" in out[2].error


@pytest.mark.parametrize("outer", ["list_", "large_list", "fixed"])
@pytest.mark.parametrize("inner", ["list_", "fixed"])
def test_nested_mels_n_mels_lists_of_n_frames(tmp_path, outer, inner):
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = np.linspace(-9, -1, N_MELS * 5, dtype=np.float32).reshape(N_MELS, 5)
    inner_type = pa.list_(pa.float32(), 5) if inner == "fixed" else pa.list_(pa.float32())
    kind = pa.list_(inner_type, N_MELS) if outer == "fixed" else getattr(pa, outer)(inner_type)
    rows = [good, None]
    if inner != "fixed":
        rows.append(good[:, :1])  # one frame
    if inner != "fixed" and outer != "fixed":
        rows.append(good.T)  # [n_frames][n_mels]: refused, naming the layout
    mels = pa.array([None if m is None else m.tolist() for m in rows], kind)
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(len(rows))], "mel": mels}), tmp_path / "m.parquet")
    out = _read(tmp_path / "m.parquet")
    for row, mel in zip(out, rows, strict=True):
        if mel is None:
            assert "null" in row.error
        elif mel.shape[0] == N_MELS:
            assert row.error is None and np.array_equal(row.mel, mel), row.error
        else:
            assert "5 mel bands" in row.error and "[n_frames][n_mels]" in row.error


def test_ragged_nested_mels_are_a_row_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ragged = [[-5.0, -5.0]] * (N_MELS - 1) + [[-5.0]]
    mels = pa.array([[[-5.0, -5.0]] * N_MELS, ragged], pa.list_(pa.list_(pa.float32())))
    pq.write_table(pa.table({"id": ["ok", "ragged"], "mel": mels, "n_frames": [2, 2]}), tmp_path / "m.parquet")
    ok, ragged = _read(tmp_path / "m.parquet")
    assert ok.error is None and ok.mel.shape == (N_MELS, 2)
    assert "ragged" in ragged.error


def test_read_batches_gives_each_batch_its_passthrough_and_rows(tmp_path):
    from batchvoc.manifest.rows import READ_ROWS, decode_batch, read_batches

    rows = mel_rows(READ_ROWS + 5, N_MELS, frames=2)
    rows[3]["id"] = rows[1]["id"]  # a duplicate: an error even when its file exists (that file is row 1's)
    path = write_manifest(tmp_path / "m.parquet", rows, row_group_size=READ_ROWS + 5)
    (shard,) = plan_shards(find_manifest_files(path), 10**9)
    batches = list(read_batches(shard, N_MELS, skip={2, 3}))
    assert [len(r) for _, r in batches] == [READ_ROWS, 5]
    assert all(t.num_rows == len(r) and "mel" not in t.column_names and "speaker" in t.column_names
               for t, r in batches)  # fmt: skip
    got = [row for _, rs in batches for row in rs]
    assert [r.index for r in got] == list(range(READ_ROWS + 5))
    assert got[2].mel is None and got[2].error is None  # skipped: its audio exists already
    assert "appears earlier" in got[3].error
    table = batches[0][0]
    again = list(decode_batch(pq_table(path).slice(0, 10), 0, shard, N_MELS, lambda row, key: key == rows[0]["id"]))
    assert again[0].mel is None and again[1].mel is not None and table.column("id")[0].as_py() == rows[0]["id"]


def pq_table(path):
    import pyarrow.parquet as pq

    return pq.read_table(path)
