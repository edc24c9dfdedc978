import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from batchvoc.errors import ConfigError
from batchvoc.outputs import passthrough_schema
from batchvoc.sink import (
    OUTPUT_COLUMNS,
    ShardSink,
    check_format,
    check_writable,
    done_shards,
    passthrough_names,
    remove_partials,
)
from batchvoc.storage import Store, WriteFault


def test_write_is_atomic_and_fields_are_right(tmp_path):
    sink = ShardSink(tmp_path, "s0", 16000, "wav", "FLOAT")
    audio = np.sin(np.linspace(0, 100, 1600)).astype(np.float32) * 0.3
    fields = sink.write("spk/a", audio)
    data, rate = sf.read(tmp_path / "audio" / "s0" / "spk" / "a.wav", dtype="float32")
    assert rate == 16000 and np.array_equal(data, audio)
    assert fields["n_samples"] == 1600 and fields["duration_s"] == 0.1 and fields["status"] == "ok"
    assert fields["peak"] == pytest.approx(np.abs(audio).max())
    assert fields["path"] == "audio/s0/spk/a.wav"
    assert sink.reuse("spk/a") == fields
    assert sink.written() == {"spk/a"}
    assert not list(tmp_path.rglob("*.partial-*"))


@pytest.mark.parametrize("fmt, subtype", [("wav", "PCM_16"), ("flac", "PCM_24")])
def test_a_finished_file_carries_its_row_s_fields_for_a_resume(tmp_path, fmt, subtype):
    sink = ShardSink(tmp_path, "s0", 8000, fmt, subtype)
    reason = "mel_error 1.45 > check.max_mel_error 0.8: " + "é" * 5000  # longer than a WAV tag keeps
    audio = np.linspace(-1.2, 1.2, 800).astype(np.float32)
    fields = sink.write("a", audio, dict(clipped=7, mel_error=1.45, status="suspect", error=reason))
    assert fields["clipped"] == 7 and fields["error"] == reason and fields["peak"] == 1.0
    again = ShardSink(tmp_path, "s0", 8000, fmt, subtype)  # a later run
    assert again.written() == {"a"} and again.recall("a")
    kept = again.reuse("a")
    assert kept["error"].startswith(reason[:500]) and kept["error"].endswith("...") and len(kept["error"]) >= 900
    assert {k: v for k, v in kept.items() if k != "error"} == {k: v for k, v in fields.items() if k != "error"}
    sf.write(tmp_path / "audio" / "s0" / f"b.{fmt}", audio.clip(-1, 1), 8000, subtype=subtype)  # not batchvoc's
    (tmp_path / "audio" / "s0" / f"c.{fmt}").write_bytes(b"not audio")
    assert again.written() == {"a", "b", "c"} and not again.recall("b") and not again.recall("c")
    with pytest.raises(ValueError, match="does not carry"):
        again.reuse("b")


@pytest.mark.parametrize("fmt, subtype", [("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", "PCM_16")])
def test_a_file_vocoded_from_a_npy_rewritten_since_is_not_reused(tmp_path, fmt, subtype):
    """An interrupted shard's finished file was reused by the rerun even where its row's .npy had been rewritten
    in between (the old mel's audio stood). Each file now carries the mark of the .npy it was made from; a later
    run whose mark for that row differs vocodes it again; the same mark, a file gone (no mark now) or a file
    written without one (an older batchvoc) is reused as before."""
    sink = ShardSink(tmp_path, "s0", 8000, fmt, subtype)
    sink.mel_marks = {"a": "320:111", "b": "320:111", "c": "320:111"}
    audio = np.linspace(-0.5, 0.5, 800).astype(np.float32)
    fields = {key: sink.write(key, audio) for key in ("a", "b", "c")}
    sf.write(tmp_path / "audio" / "s0" / f"d.{fmt}", audio, 8000, subtype=subtype)  # no tag: not reused either way
    again = ShardSink(tmp_path, "s0", 8000, fmt, subtype)
    again.mel_marks = {"a": "320:111", "b": "320:222", "c": None}  # b rewritten since, c's file gone
    assert [again.recall(key) for key in ("a", "b", "c", "d")] == [True, False, True, False]
    assert again.reuse("a") == fields["a"] and again.reuse("c") == fields["c"]  # the mark is not a field
    old = ShardSink(tmp_path, "s0", 8000, fmt, subtype)  # files written before marks: reused
    old.write("e", audio)
    again.mel_marks["e"] = "9:9"
    assert again.recall("e")


def test_pcm16_clips_and_flac_goes_under_audio(tmp_path):
    sink = ShardSink(tmp_path, "s0", 8000, "flac", "PCM_16")
    sink.write("x", np.array([2.0, -2.0, 0.5], np.float32))
    data, _ = sf.read(tmp_path / "audio" / "s0" / "x.flac")
    assert data.max() <= 1.0 and data.min() >= -1.0


def test_a_write_that_cannot_happen_leaves_nothing_and_names_the_cause(tmp_path):
    (tmp_path / "audio").write_text("a file where the audio folder should be")
    sink = ShardSink(tmp_path, "s0", 8000)
    with pytest.raises(WriteFault) as err:
        sink.write("x", np.zeros(10, np.float32))
    assert err.value.permanent and str(tmp_path) in str(err.value) and "folder" in str(err.value)
    assert sink.fault is err.value
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio"]


def test_finish_writes_stats_then_manifest_with_passthrough(tmp_path):
    sink = ShardSink(tmp_path, "s1", 16000)
    results = [sink.write("a", np.zeros(10, np.float32)), sink.failed("b", "mel has 3 NaN or Inf values of 9")]
    passthrough = pa.table({"id": ["a", "b"], "speaker": ["x", "y"], "status": ["s", "t"]})
    sink.finish(results, passthrough, {"shard": "s1", "rows": 2})
    table = pq.read_table(tmp_path / "manifest" / "s1.parquet")
    assert table.column_names[:10] == ["id", "path", "sample_rate", "n_samples", "duration_s", "peak", "clipped",
                                       "mel_error", "status", "error"]  # fmt: skip
    assert table.column("speaker").to_pylist() == ["x", "y"]
    assert table.column("input_status").to_pylist() == ["s", "t"]
    assert table.column("status").to_pylist() == ["ok", "error"]
    assert json.loads((tmp_path / "stats" / "s1.json").read_text())["rows"] == 2
    assert done_shards(tmp_path) == {"s1"}


def test_clashing_input_columns_get_unique_names_alike_in_every_shard(tmp_path):
    # two input files whose columns clash with batchvoc's and with each other's renamings, chains included
    clashing = {"a": ["status", "input_status", "input_input_status", "path", "input_path", "speaker"],
                "b": ["error", "input_error", "sample_rate", "input_sample_rate", "status", "speaker"]}  # fmt: skip
    inputs = {}
    for shard, names in clashing.items():
        ids = [f"{shard}{i}" for i in range(3)]
        inputs[shard] = pa.table({"id": ids, **{name: [f"{name}@{key}" for key in ids] for name in names}})
        pq.write_table(inputs[shard], tmp_path / f"{shard}.parquet")
    schema = passthrough_schema([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    for shard in clashing:
        sink = ShardSink(tmp_path / "out", shard, 16000, columns=schema)
        results = [sink.failed(key, "no mel") for key in inputs[shard].column("id").to_pylist()]
        sink.finish(results, pq.read_table(tmp_path / f"{shard}.parquet"), {"shard": shard})

    out = pq.read_table(tmp_path / "out" / "manifest")  # the folder: both shards under one schema
    names = out.column_names
    assert len(set(names)) == len(names) and names[:10] == list(OUTPUT_COLUMNS)
    renamed = dict(zip(schema.names, names[10:], strict=True))
    assert renamed == {"status": "input_input_input_status", "input_status": "input_status",
                       "input_input_status": "input_input_status", "path": "input_input_path",
                       "input_path": "input_path", "speaker": "speaker", "error": "input_input_error",
                       "input_error": "input_error", "sample_rate": "input_input_sample_rate",
                       "input_sample_rate": "input_sample_rate"}  # fmt: skip
    rows = {row["id"]: row for row in out.to_pylist()}
    for table in inputs.values():  # every input value in its column; a column a file lacks is null there
        for row in table.to_pylist():
            assert rows[row["id"]]["status"] == "error"
            assert {name: rows[row["id"]][renamed[name]] for name in schema.names} == {
                name: row.get(name) for name in schema.names}  # fmt: skip

    # the worst case: every own column with its input_ and input_input_ forms, in any order
    chains = [prefix + name for name in OUTPUT_COLUMNS[1:] for prefix in ("", "input_", "input_input_")]
    for names in (chains, chains[::-1]):
        given = passthrough_names(names)
        assert len(set(given)) == len(given) and not set(given) & set(OUTPUT_COLUMNS)
        assert [n for n, g in zip(names, given, strict=True) if n != g] == [n for n in names if n in OUTPUT_COLUMNS]


def test_partials_of_one_job_are_removed_by_it_and_every_job_s_only_under_the_lock(tmp_path):
    folder = tmp_path / "audio" / "s"
    folder.mkdir(parents=True)
    (folder / ".a.wav.partial-jobA-1-2").write_bytes(b"x")
    (folder / ".c.wav.partial-jobB-1-2").write_bytes(b"x")
    (folder / "b.wav").write_bytes(b"x")
    assert Store(tmp_path, token="jobA").remove_partials("audio") == 1
    assert sorted(p.name for p in folder.iterdir()) == [".c.wav.partial-jobB-1-2", "b.wav"]
    assert remove_partials(tmp_path, any_job=True) == 1
    assert [p.name for p in folder.iterdir()] == ["b.wav"]


def test_config_checks_name_keys(tmp_path):
    with pytest.raises(ConfigError) as err:
        check_format("mp3", "PCM_16")
    assert err.value.key == "output.format"
    with pytest.raises(ConfigError) as err:
        check_format("flac", "FLOAT")
    assert err.value.key == "output.subtype"
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as err:
        check_writable(blocker / "out")
    assert err.value.key == "output.dir"


@pytest.mark.parametrize(
    "first, second, errno_name",
    [
        ("a", "a.wav/b", "EEXIST"),  # a file where the second row's folder goes
        ("a", "a.wav/b/c", "ENOTDIR"),  # ... deeper: a file on the way to its folder
        ("a.wav/b", "a", "EISDIR"),  # a folder where the second row's file goes
        ("short", "n" * 300, "ENAMETOOLONG"),  # a file name longer than the file system takes
    ],
)
def test_a_fault_of_a_row_s_own_path_fails_that_row_only(tmp_path, first, second, errno_name):
    """Not the shard's fault: its audio folder stands, so the row's write fails again, and only that row's."""
    sink = ShardSink(tmp_path, "s0", 8000)
    sink.write(first, np.zeros(10, np.float32))
    with pytest.raises(WriteFault) as err:
        sink.write(second, np.zeros(10, np.float32))
    said = str(err.value)
    assert said.startswith(f"cannot write its audio file audio/s0/{second}.wav: ") and f"[{errno_name}]" in said
    assert err.value.permanent and sink.fault is None  # the shard goes on, and finishes
    assert sink.write("c", np.zeros(10, np.float32))["status"] == "ok" and sink.written() == {first, "c"}
    assert not list(tmp_path.rglob("*.partial-*"))
