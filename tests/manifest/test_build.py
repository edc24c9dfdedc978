import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from batchvoc.manifest import find_manifest_files, plan_shards, read_shard_rows
from batchvoc.manifest.__main__ import main
from batchvoc.models.presets import get_preset


def _rows(path, n_mels):
    (shard,) = plan_shards(find_manifest_files(path), 10**9)
    return list(read_shard_rows(shard, n_mels))


def test_audio_folder_becomes_inline_mels(tmp_path):
    fe = get_preset("hifigan_v1_universal").front_end
    (tmp_path / "wavs" / "spk").mkdir(parents=True)
    t = np.arange(fe.sample_rate // 2) / fe.sample_rate
    sf.write(tmp_path / "wavs" / "spk" / "a.wav", 0.3 * np.sin(2 * np.pi * 440 * t), fe.sample_rate)
    sf.write(tmp_path / "wavs" / "b.flac", 0.3 * np.sin(2 * np.pi * 220 * t[:4000]), fe.sample_rate)
    code = main(["audio", str(tmp_path / "wavs"), str(tmp_path / "m.parquet"), "--preset", "hifigan_v1_universal"])
    assert code == 0
    rows = _rows(tmp_path / "m.parquet", fe.n_mels)
    assert [r.id for r in rows] == ["b", "spk/a"]
    assert all(r.error is None for r in rows)
    assert rows[0].mel.shape == (80, 4000 // fe.hop_length)
    assert rows[1].mel.shape == (80, len(t) // fe.hop_length)


def test_audio_rows_source_is_the_files_absolute_path(tmp_path, monkeypatch):
    """`source` names the audio file so that a reader of the manifest (or of the output manifest it passes through
    to) finds it: an absolute path. It was the path as given, relative to the builder's current directory."""
    fe = get_preset("hifigan_v1_universal").front_end
    (tmp_path / "data" / "wavs").mkdir(parents=True)
    sf.write(tmp_path / "data" / "wavs" / "a.wav", np.zeros(4000), fe.sample_rate)
    monkeypatch.chdir(tmp_path)  # the builder runs from tmp_path, with relative paths
    assert main(["audio", "data/wavs", "data/out/m.parquet", "--preset", "hifigan_v1_universal"]) == 0
    (source,) = pq.read_table(tmp_path / "data" / "out" / "m.parquet").column("source").to_pylist()
    assert source == str((tmp_path / "data" / "wavs" / "a.wav").resolve())


def test_resampled_files_are_said_in_one_line_per_build(tmp_path, capsys):
    """Audio at another rate than the front end's (44.1 kHz or 16 kHz files for a 22.05 kHz preset) was resampled
    without a word. One line per build says how many of the files were resampled, from which rates to which; a
    folder at the front end's rate says nothing. The count is no column of the manifest, and is the same with
    --workers."""
    import math

    fe = get_preset("hifigan_v1_universal").front_end
    src = tmp_path / "wavs"
    src.mkdir()
    rates = {"a.wav": 22050, "b.wav": 44100, "c.flac": 44100, "d.wav": 16000}
    for name, rate in rates.items():
        t = np.arange(rate // 2) / rate  # half a second of a 440 Hz tone
        sf.write(src / name, 0.3 * np.sin(2 * np.pi * 440 * t), rate)
    said = "resampled 3 of 4 files to the hifigan_v1_universal front end's rate: 1 from 16000 Hz to 22050 Hz, "
    said += "2 from 44100 Hz to 22050 Hz"
    for workers in ("1", "2"):
        out = tmp_path / f"m{workers}.parquet"
        assert main(["audio", str(src), str(out), "--preset", "hifigan_v1_universal", "--workers", workers]) == 0
        captured = capsys.readouterr()
        lines = (captured.out + captured.err).splitlines()
        assert [line for line in lines if line.startswith("resampled")] == [said], captured
        table = pq.read_table(out)
        assert table.column_names == ["id", "mel", "n_frames", "n_mels", "source"]
    frames = {r.id: r.mel.shape[1] for r in _rows(tmp_path / "m1.parquet", fe.n_mels)}
    assert frames == {name[:1]: math.ceil((rate // 2) * 22050 / rate) // fe.hop_length for name, rate in rates.items()}
    native = tmp_path / "native"
    native.mkdir()
    (native / "a.wav").write_bytes((src / "a.wav").read_bytes())
    assert main(["audio", str(native), str(tmp_path / "n.parquet"), "--preset", "hifigan_v1_universal"]) == 0
    assert not any(line.startswith("resampled") for line in capsys.readouterr().err.splitlines())


def test_npy_folder_becomes_mel_path_rows(tmp_path):
    (tmp_path / "mels").mkdir()
    for i, frames in enumerate([5, 9]):
        np.save(tmp_path / "mels" / f"u{i}.npy", np.full((100, frames), -4.0, np.float32))
    assert main(["npy", str(tmp_path / "mels"), str(tmp_path / "manifest.parquet")]) == 0
    rows = _rows(tmp_path / "manifest.parquet", 100)
    assert [(r.id, r.mel.shape) for r in rows] == [("u0", (100, 5)), ("u1", (100, 9))]


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob("*.partial-*"))


def test_unreadable_and_too_short_files_are_skipped_with_a_reason_each(tmp_path, speech, capsys):
    src = tmp_path / "wavs"
    src.mkdir()
    for wav in speech.wavs[:2]:
        (src / wav.name).write_bytes(wav.read_bytes())
    sf.write(src / "short.wav", np.zeros(100, np.float32), 22050)  # 100 samples: less than one frame
    (src / "junk.wav").write_text("not a wav file")
    sf.write(src / "empty.flac", np.zeros(0, np.float32), 22050)
    out = tmp_path / "m.parquet"
    assert main(["audio", str(src), str(out), "--preset", "hifigan_v1_universal"]) == 2
    err = capsys.readouterr().err
    assert "short.wav: too short: 100 samples" in err
    assert "junk.wav: unreadable audio" in err and "empty.flac: " in err
    rows = _rows(out, 80)
    assert [r.id for r in rows] == ["s00", "s01"] and all(r.error is None for r in rows)
    assert _leftovers(tmp_path) == []


def test_nothing_usable_writes_no_manifest_and_exits_1(tmp_path, capsys):
    src = tmp_path / "wavs"
    src.mkdir()
    sf.write(src / "short.wav", np.zeros(100, np.float32), 22050)
    out = tmp_path / "m.parquet"
    assert main(["audio", str(src), str(out), "--preset", "gsv_v4"]) == 1
    assert not out.exists() and _leftovers(tmp_path) == []
    assert "no manifest written" in capsys.readouterr().err


def test_a_build_that_dies_midway_leaves_the_old_manifest_and_no_partial(tmp_path):
    from batchvoc.manifest.build import write_manifest

    out = tmp_path / "m.parquet"
    out.write_bytes(b"the previous manifest")

    def rows():
        yield tmp_path / "a.npy", dict(id="a", mel_path="a.npy", n_frames=3, n_mels=80)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_manifest(rows(), out, inline=False)
    assert out.read_bytes() == b"the previous manifest" and _leftovers(tmp_path) == []


def test_workers_give_the_same_manifest_as_one_process(tmp_path, speech):
    src = tmp_path / "wavs"
    src.mkdir()
    for wav in speech.wavs:
        (src / wav.name).write_bytes(wav.read_bytes())
    sf.write(src / "short.wav", np.zeros(10, np.float32), 22050)
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    assert main(["audio", str(src), str(one), "--preset", "hifigan_v1_universal"]) == 2
    assert main(["audio", str(src), str(two), "--preset", "hifigan_v1_universal", "--workers", "2"]) == 2
    assert pq.read_table(one).equals(pq.read_table(two))
    assert pq.read_table(one).num_rows == len(speech.wavs)


def test_npy_rows_are_checked_against_the_builders_preset(tmp_path, capsys):
    (tmp_path / "mels").mkdir()
    np.save(tmp_path / "mels" / "ok.npy", np.full((1, 100, 7, 1), -4.0, np.float32))
    np.save(tmp_path / "mels" / "bands80.npy", np.full((80, 7), -4.0, np.float32))
    np.save(tmp_path / "mels" / "ints.npy", np.zeros((100, 7), np.int32))
    np.save(tmp_path / "mels" / "cube.npy", np.zeros((2, 100, 7), np.float32))
    np.save(tmp_path / "mels" / "transposed.npy", np.full((263, 100), -4.0, np.float32))
    (tmp_path / "mels" / "junk.npy").write_text("junk")
    out = tmp_path / "m.parquet"
    assert main(["npy", str(tmp_path / "mels"), str(out), "--preset", "gsv_v4", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    reasons = {"bands80": "80 mel bands", "ints": "int32", "cube": "[2, 100, 7]", "junk": "unreadable",
               "transposed": "263 mel bands, the preset takes 100 (stored [n_frames, n_mels]? save mel.T)"}  # fmt: skip
    for name, reason in reasons.items():
        assert f"{name}.npy: " in err and reason in err
    assert [(r.id, r.mel.shape) for r in _rows(out, 100)] == [("ok", (100, 7))]


def test_npy_files_the_job_would_refuse_are_skipped_by_the_jobs_own_checks(tmp_path, capsys):
    """0 frames, NaN or Inf values and float64 values beyond float32 make no row (the job refused those rows): each
    file is named with the job's reason, the count closes the list, exit 2; the rows written all read clean."""
    (tmp_path / "mels").mkdir()
    good = np.full((100, 7), -4.0, np.float32)
    big = good.astype(np.float64)
    big[5, 3] = 1e300
    files = {"ok": good, "empty": np.zeros((100, 0), np.float32), "all_nan": np.full((100, 7), np.nan, np.float32),
             "one_inf": np.where(np.arange(7) == 2, np.inf, good), "big": big,
             "ok64": good.astype(np.float64)}  # fmt: skip
    for name, array in files.items():
        np.save(tmp_path / "mels" / f"{name}.npy", array)
    out = tmp_path / "m.parquet"
    assert main(["npy", str(tmp_path / "mels"), str(out), "--preset", "gsv_v4"]) == 2
    printed = capsys.readouterr()
    err = printed.err
    reasons = {"empty": "0 frames", "all_nan": "700 NaN or Inf values of 700", "one_inf": "100 NaN or Inf values",
               "big": "1 value out of float32 range (e.g. 1e+300 at frame 3, band 5)"}  # fmt: skip
    for name, reason in reasons.items():
        assert f"skipped {tmp_path / 'mels' / name}.npy: " in err and reason in err, (name, err)
    assert "wrote 2 rows" in printed.out and "skipped 4 files" in printed.out
    rows = _rows(out, 100)
    assert [(r.id, r.error) for r in rows] == [("ok", None), ("ok64", None)]


def test_files_whose_names_the_job_refuses_as_ids_are_skipped_with_the_jobs_reason(tmp_path, capsys):
    """A newline, a C1 control character or a backslash in a file's name (all legal on Linux) would make an id the
    job refuses (rows.check_id): the file makes no row, its line (the path escaped) says the job's reason."""
    (tmp_path / "mels" / "spk").mkdir(parents=True)
    for name in ("ok", "new\nline", "back\\slash", "spk/c1\x85"):
        np.save(tmp_path / "mels" / f"{name}.npy", np.full((100, 7), -4.0, np.float32))
    out = tmp_path / "m.parquet"
    assert main(["npy", str(tmp_path / "mels"), str(out)]) == 2
    printed = capsys.readouterr()
    lines = printed.err.splitlines()
    assert len(lines) == 3 and "wrote 1 row" in printed.out and "skipped 3 files" in printed.out, printed
    newline = str(tmp_path / "mels" / "new\nline.npy")
    assert f"skipped {newline!r}: id 'new\\nline' holds a control character (U+000A): " in printed.err, printed.err
    assert f"skipped {tmp_path / 'mels' / 'back'}\\slash.npy: id 'back\\\\slash' holds a backslash" in printed.err
    assert "id 'spk/c1\\x85' holds a control character (U+0085)" in printed.err and "; rename the file" in lines[0]
    assert [(r.id, r.error) for r in _rows(out, 100)] == [("ok", None)]


def test_npy_files_none_of_which_the_job_takes_write_no_manifest(tmp_path, capsys):
    (tmp_path / "mels").mkdir()
    np.save(tmp_path / "mels" / "empty.npy", np.zeros((80, 0), np.float32))
    np.save(tmp_path / "mels" / "nan.npy", np.full((80, 4), np.nan, np.float32))
    out = tmp_path / "m.parquet"
    assert main(["npy", str(tmp_path / "mels"), str(out)]) == 1
    err = capsys.readouterr().err
    assert "empty.npy: the .npy has 0 frames" in err and "nan.npy: the .npy has 320 NaN" in err
    assert "no manifest written" in err and not out.exists()


def test_a_broken_npy_is_skipped_with_what_its_header_says(tmp_path, capsys):
    from tests.manifest.test_rows import broken_npy_files

    expected = broken_npy_files(tmp_path / "mels", n_mels=100)  # gsv_v4's
    out = tmp_path / "m.parquet"
    assert main(["npy", str(tmp_path / "mels"), str(out), "--preset", "gsv_v4"]) == 2
    err = capsys.readouterr().err
    for name, words in expected.items():
        assert f"{name}.npy: unreadable .npy: {words}" in err, err
    assert [r.id for r in _rows(out, 100)] == ["good"]


def test_preset_is_the_builders_own_option_and_help_lists_the_presets(tmp_path, capsys):
    from batchvoc.models.presets import PRESETS

    (tmp_path / "w").mkdir()
    sf.write(tmp_path / "w" / "a.wav", np.zeros(4000, np.float32), 22050)
    assert main(["audio", str(tmp_path / "w"), str(tmp_path / "m.parquet"), "--preset", "hifigan"]) == 1
    err = capsys.readouterr().err
    assert "--preset" in err and "model.preset" not in err and "hifigan_v1_universal" in err
    with pytest.raises(SystemExit):
        main(["audio", "--help"])
    text = capsys.readouterr().out.replace("\n", "").replace(" ", "")
    assert [name for name in PRESETS if name not in text] == [], text


@pytest.mark.parametrize("source", ["npy", "audio"])
def test_an_object_store_url_is_refused_in_one_line_naming_it(tmp_path, capsys, source):
    """The builder reads and writes local files: a URL (the researcher's mels in a bucket) is named whole, not read
    as a local path ('s3:/b/mels is not a folder'), with what to do; nothing is written, nothing contacted."""
    local = tmp_path / "mels"
    local.mkdir()
    np.save(local / "a.npy", np.full((80, 20), -5.0, np.float32))
    for args in (["s3://corpus/mels", str(tmp_path / "m.parquet")], [str(local), "s3://corpus/mels/m.parquet"]):
        assert main([source, *args, "--preset", "hifigan_v1_universal"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        url = next(arg for arg in args if arg.startswith("s3://"))
        assert len(err) == 1 and url in err[0] and "local" in err[0], err
    assert not list(tmp_path.glob("*.parquet"))
