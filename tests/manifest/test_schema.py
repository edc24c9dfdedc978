import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchvoc.errors import ConfigError
from batchvoc.manifest import check_schema, find_manifest_files
from batchvoc.manifest.conventions import MelChecks
from batchvoc.manifest.schema import (
    ManifestFiles,
    declared_values,
    list_manifest_files,
    output_overlap,
    refuse_if_every_row_declares_wrong,
)
from tests.conftest import mel_rows, write_manifest
from tests.s3server import s3_server  # noqa: F401 - the session fixture


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


def test_files_with_both_mel_and_mel_path_are_named_once_saying_which_is_read(tmp_path, caplog):
    from batchvoc.manifest import check_manifest_files

    plain = write_manifest(tmp_path / "d" / "a.parquet", mel_rows(2, 4))
    both = []
    for name in ("b.parquet", "c.parquet"):
        table = pq.read_table(plain)
        both.append(tmp_path / "d" / name)
        pq.write_table(table.append_column("mel_path", pa.array(["x.npy"] * table.num_rows)), both[-1])
    with caplog.at_level("WARNING"):
        check_manifest_files([str(plain)])
    assert "mel_path" not in caplog.text
    with caplog.at_level("WARNING"):
        check_manifest_files(find_manifest_files(tmp_path / "d"))
    (line,) = [r.getMessage() for r in caplog.records if "mel_path" in r.getMessage()]
    assert "2 files have both" in line and str(both[0].resolve()) in line and "'mel' is read" in line


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


def _protocol_not_installed() -> str | None:
    """An object store fsspec knows whose package is not installed here (its URL's filesystem cannot be made)."""
    import fsspec

    for protocol in ("oci", "abfs", "gcs"):
        try:
            fsspec.get_filesystem_class(protocol)
        except ImportError:
            return protocol
    return None


def test_an_output_dir_on_a_store_whose_package_is_missing_is_a_config_error_naming_it(tmp_path):
    """output.dir=gcs://... without gcsfs: one line naming output.dir and the package, not a traceback (the listing
    checks the manifest against output.dir before output.dir's own check runs)."""
    protocol = _protocol_not_installed()
    if protocol is None:
        pytest.skip("every object store package fsspec knows of is installed here")
    manifest = write_manifest(tmp_path / "a.parquet", mel_rows(2, 80))
    with pytest.raises(ConfigError, match=r"cannot open .*\[ImportError\]") as err:
        list_manifest_files(manifest, f"{protocol}://bucket/out")
    assert err.value.key == "output.dir" and "install" in str(err.value).lower()


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


def _a_jobs_output(out, manifest) -> list:
    """output.dir `out` as a batchvoc job on `manifest` leaves it: its job.json (runner.identity.claim's) and two
    output-manifest shards whose rows carry the input's mel_path through (the columns a job writes)."""
    from batchvoc.models.presets import get_preset
    from batchvoc.runner.identity import claim, job_identity
    from batchvoc.storage import Store
    from tests.jobs import small_job

    settings = small_job(None, manifest=str(manifest), out_dir=str(out))
    identity = job_identity(settings, get_preset(settings.preset), find_manifest_files(manifest, out))
    assert claim(Store(out), identity, overwrite=False) == "new"
    shards = []
    for shard in ("m.r000000000-000000003", "m.r000000003-000000006"):
        first = int(shard[3:12])
        rows = [dict(id=f"utt_{i}", path=f"audio/{shard}/utt_{i}.wav", status="ok", error=None,
                     mel_path=f"utt_{i}_16k.npy") for i in range(first, first + 3)]  # fmt: skip
        shards.append(write_manifest(out / "manifest" / f"{shard}.parquet", rows))
    return [str(p.resolve()) for p in shards]


def test_other_jobs_output_manifests_are_not_read_from_a_folder_or_a_glob(tmp_path, monkeypatch):
    """The user's report: a job with output.dir data/npy/out, then one with output.dir data/npy/audio/x read the
    first one's output manifest as input (12 rows instead of 6). A folder holding job.json is a job's output.dir:
    its manifest/ is left out, said in one sentence; a folder that merely is called manifest/ is read."""
    from fsspec.implementations.local import LocalFileSystem

    npy = tmp_path / "data" / "npy"
    mine = write_manifest(npy / "m.parquet", [dict(id=f"utt_{i}", mel_path=f"utt_{i}_16k.npy") for i in range(6)])
    theirs = _a_jobs_output(npy / "out", npy)
    kept = write_manifest(npy / "sub" / "manifest" / "b.parquet", mel_rows(2, 80))  # no job.json above it
    expected = [str(mine.resolve()), str(kept.resolve())]
    asked = []
    exists = LocalFileSystem.exists
    monkeypatch.setattr(LocalFileSystem, "exists", lambda self, path, **kw: asked.append(path) or exists(self, path))
    for spec in (npy, f"{npy}/", f"{npy}/**/*.parquet", f"{tmp_path}/data/**/*.parquet", f"{npy}/*/manifest/*"):
        for output_dir in (None, npy / "audio" / "x"):
            asked.clear()
            files = list_manifest_files(spec, output_dir)
            assert files.paths == ([str(kept.resolve())] if str(spec).endswith("manifest/*") else expected), spec
            assert files.left_out == (f"input.manifest {spec}: left out the output manifests of 1 batchvoc job, 2 "
                                      f"files in all: {npy / 'out'} (2 files) (a job's manifest/ is read as input "
                                      "only where input.manifest names it)")  # fmt: skip
            records = sorted(p for p in asked if p.endswith("job.json"))
            if "*" in str(spec):  # a glob: one exists() per distinct folder above a manifest/
                assert records == [f"{npy}/out/job.json", f"{npy}/sub/job.json"], spec
            else:  # a folder: its listing holds the job.json files
                assert records == [], spec
    assert list_manifest_files(mine).left_out is None  # one file: what it names
    (npy / "out" / "job.json").unlink()  # no job.json: not a job's output.dir, its manifest/ is read
    assert list_manifest_files(npy) == ManifestFiles(sorted([*expected, *theirs]), None)


def test_a_jobs_output_manifest_is_read_where_input_manifest_names_it(tmp_path):
    """Chaining jobs on purpose: input.manifest that lies in a job's manifest/ folder reads it, unwarned."""
    out = tmp_path / "runs" / "first"
    write_manifest(tmp_path / "runs" / "in" / "m.parquet", mel_rows(6, 80))
    theirs = _a_jobs_output(out, tmp_path / "runs" / "in")
    for spec in (out / "manifest", f"{out}/manifest/", f"{out}/manifest/*.parquet", f"{out}/manifest/**"):
        assert list_manifest_files(spec, tmp_path / "second") == ManifestFiles(theirs, None), spec
    assert find_manifest_files(theirs[0], tmp_path / "second") == theirs[:1]
    # the job's folder itself, or a folder above it: its manifest/ is its output, not what was named
    with pytest.raises(ConfigError, match=r"no Parquet files found at .*; left out the output manifests of 1 "
                       rf"batchvoc job, 2 files in all: {out} \(2 files\)"):  # fmt: skip
        find_manifest_files(out, tmp_path / "second")
    assert list_manifest_files(tmp_path / "runs").left_out.endswith("2 files in all: " + f"{out} (2 files) (a job's "
                                                                    "manifest/ is read as input only where "
                                                                    "input.manifest names it)")  # fmt: skip


def test_a_folder_of_audio_files_says_how_to_make_a_manifest_of_them(tmp_path, monkeypatch, capsys):
    import numpy as np
    import soundfile as sf

    from batchvoc.manifest.__main__ import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mywavs" / "spk").mkdir(parents=True)
    t = np.arange(4000) / 22050
    sf.write(tmp_path / "mywavs" / "spk" / "a.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 22050)
    sf.write(tmp_path / "mywavs" / "b.flac", 0.3 * np.sin(2 * np.pi * 220 * t), 22050)
    with pytest.raises(ConfigError) as err:
        find_manifest_files("mywavs")
    command = "python -m batchvoc.manifest audio mywavs mywavs.parquet --preset NAME"
    assert err.value.message == (f"no Parquet files found at 'mywavs': it holds 2 audio files; make a manifest of "
                                 f"them with `{command}` (NAME: the job's model.preset), then set "
                                 "input.manifest=mywavs.parquet")  # fmt: skip
    # a job's quick checks know its preset: the command names it, and as said it makes the manifest the job reads
    with pytest.raises(ConfigError) as err:
        list_manifest_files("mywavs", preset="hifigan_v1_universal")
    command = command.replace("NAME", "hifigan_v1_universal")
    assert f"them with `{command}`, then set input.manifest=mywavs.parquet" in err.value.message
    assert main(command.split()[3:]) == 0
    assert find_manifest_files("mywavs.parquet") == [str(tmp_path / "mywavs.parquet")]
    (tmp_path / "mels").mkdir()
    np.save(tmp_path / "mels" / "a.npy", np.zeros((80, 4), np.float32))
    with pytest.raises(ConfigError, match=r"it holds 1 \.npy mel file; .*`python -m batchvoc\.manifest npy mels "):
        find_manifest_files("mels/")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^input\.manifest: no Parquet files found at 'empty'$"):
        find_manifest_files("empty")
    for gone in ("nothere", "nothere/m.parquet", "empty/m.parquet"):  # a path with nothing there says so
        with pytest.raises(ConfigError, match=rf"^input\.manifest: no Parquet files found at '{gone}': no such file"):
            find_manifest_files(gone)
    with pytest.raises(ConfigError, match=r"^input\.manifest: no Parquet files found at 'empty/\*\.parquet'$"):
        find_manifest_files("empty/*.parquet")  # a glob matching nothing: nothing more to say


def test_other_jobs_output_manifests_are_left_out_in_a_bucket_too(tmp_path, s3_server):  # noqa: F811
    import uuid

    from batchvoc import storage

    name = f"mels-{uuid.uuid4().hex[:8]}"
    fs = s3_server.filesystem()
    fs.mkdir(name)
    storage.set_options(s3_server.storage_options)
    try:
        local = write_manifest(tmp_path / "m.parquet", mel_rows(2, 80))
        for key in ("in/m.parquet", "in/out/manifest/s.r000000000-000000002.parquet", "in/x/manifest/k.parquet"):
            fs.put_file(str(local), f"{name}/{key}")
        fs.pipe_file(f"{name}/in/out/job.json", b"{}")
        want = [f"s3://{name}/in/m.parquet", f"s3://{name}/in/x/manifest/k.parquet"]
        for spec in (f"s3://{name}/in/", f"s3://{name}/in/**/*.parquet"):
            files = list_manifest_files(spec)
            assert files.paths == want and f"s3://{name}/in/out (1 file)" in files.left_out, spec
        assert list_manifest_files(f"s3://{name}/in/out/manifest").left_out is None
    finally:
        storage.set_options({})
