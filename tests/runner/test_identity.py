"""The job's identity in output.dir (job.json): the same job resumes, another one is refused naming what differs."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from batchvoc.errors import ConfigError
from batchvoc.manifest import find_manifest_files
from batchvoc.models import load_vocoder
from batchvoc.outputs import OUTPUT_ENTRIES
from batchvoc.runner.identity import RECORD, checkpoint_identity, claim, job_identity
from batchvoc.settings import JobSettings
from batchvoc.storage import Store
from tests.conftest import mel_rows, write_manifest
from tests.jobs import small_job as settings


def identity(s: JobSettings) -> dict:
    _, preset = load_vocoder(s.preset, s.checkpoint, s.hparams)
    return job_identity(s, preset, find_manifest_files(s.manifest))


def finished_job(tmp_path, rows=None) -> Store:
    """An output.dir as a job leaves it: its record, a shard's manifest, audio and the summary."""
    write_manifest(tmp_path / "in" / "part0.parquet", rows or mel_rows(20, 80, frames=6), row_group_size=8)
    store = Store(tmp_path / "out")
    assert claim(store, identity(settings(tmp_path)), overwrite=False) == "new"
    store.write_bytes("manifest/part0.r000000000-000000020.parquet", b"done")
    store.write_bytes("audio/part0.r000000000-000000020/utt_0000.wav", b"audio")
    store.write_json("summary.json", {"rows_ok": 20})
    (tmp_path / "out" / "logs").mkdir()
    return store


def test_the_same_job_resumes_and_another_is_refused_naming_each_setting(tmp_path):
    store = finished_job(tmp_path)
    assert claim(store, identity(settings(tmp_path)), overwrite=False) == "resumed"
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    other = settings(tmp_path, fmt="flac", subtype="PCM_24", precision="fp16")
    with pytest.raises(ConfigError) as err:
        claim(store, identity(other), overwrite=False)
    text = str(err.value)
    assert err.value.key == "output.dir" and "nothing was done" in text
    for named in ("output.format: wav -> flac", "output.subtype: PCM_16 -> PCM_24", "engine.precision: fp32 -> fp16"):
        assert named in text
    assert "new output.dir" in text and "output.overwrite=true" in text
    assert all(entry in text for entry in OUTPUT_ENTRIES) and "logs/ stays" in text  # all that overwrite deletes
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == before  # untouched


def test_settings_that_do_not_change_the_audio_resume(tmp_path):
    store = finished_job(tmp_path)
    same_audio = settings(tmp_path, backend="inductor", batch=3, window=40, cpu_actors=2, address="auto")
    assert claim(store, identity(same_audio), overwrite=False) == "resumed"
    with pytest.raises(ConfigError) as err:
        claim(store, identity(settings(tmp_path, hparams={"upsample_initial_channel": 64})), overwrite=False)
    assert "model.hparams" in str(err.value)
    with pytest.raises(ConfigError) as err:
        claim(store, identity(settings(tmp_path, shard_seconds=30.0)), overwrite=False)
    assert "input.shard_seconds" in str(err.value)


def test_overwrite_deletes_the_earlier_job_s_outputs_only(tmp_path):
    store = finished_job(tmp_path)
    (tmp_path / "out" / "demo_input").mkdir()
    other = settings(tmp_path, fmt="flac", subtype="PCM_24", overwrite=True)
    assert claim(store, identity(other), overwrite=True) == "overwritten"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["demo_input", "job.json", "logs"]
    assert json.loads((tmp_path / "out" / RECORD).read_text())["settings"]["output.format"] == "flac"


def test_a_changed_manifest_is_refused_naming_the_file_and_what_changed(tmp_path):
    rows = mel_rows(25, 80, frames=6)
    store = finished_job(tmp_path, rows[:20])
    write_manifest(tmp_path / "in" / "part0.parquet", rows, row_group_size=8)  # 5 rows appended
    with pytest.raises(ConfigError) as err:
        claim(store, identity(settings(tmp_path)), overwrite=False)
    assert "input.manifest: part0.parquet changed (rows 20 -> 25" in str(err.value)

    changed = [dict(r) for r in rows[:20]]
    changed[3]["mel"] = np.ascontiguousarray(changed[3]["mel"][::-1])  # same size, same statistics
    write_manifest(tmp_path / "in" / "part0.parquet", changed, row_group_size=8)
    with pytest.raises(ConfigError) as err:
        claim(store, identity(settings(tmp_path)), overwrite=False)
    assert "part0.parquet changed (same size, other content)" in str(err.value)

    write_manifest(tmp_path / "in" / "part0.parquet", rows[:20], row_group_size=8)  # the same rows again
    write_manifest(tmp_path / "in" / "part1.parquet", mel_rows(3, 80, prefix="new"))
    with pytest.raises(ConfigError) as err:
        claim(store, identity(settings(tmp_path)), overwrite=False)
    assert "part1.parquet is new" in str(err.value) and "part0" not in str(err.value)


def test_the_same_manifest_rewritten_or_moved_is_the_same_input(tmp_path):
    rows = mel_rows(20, 80, frames=6)
    store = finished_job(tmp_path, rows)
    write_manifest(tmp_path / "in" / "part0.parquet", rows, row_group_size=8)  # rewritten: new mtime, same bytes
    assert claim(store, identity(settings(tmp_path)), overwrite=False) == "resumed"
    shutil.move(tmp_path / "in", tmp_path / "moved")
    assert claim(store, identity(settings(tmp_path, manifest=str(tmp_path / "moved"))), overwrite=False) == "resumed"


def test_outputs_without_a_record_are_not_taken_for_this_job(tmp_path):
    write_manifest(tmp_path / "in" / "part0.parquet", mel_rows(4, 80, frames=6))
    (tmp_path / "out" / "wavs" / "part0.rg0000-0000").mkdir(parents=True)  # an older batchvoc's layout
    (tmp_path / "out" / "manifest").mkdir()
    (tmp_path / "out" / "manifest" / "part0.rg0000-0000.parquet").write_bytes(b"old")
    with pytest.raises(ConfigError) as err:
        claim(Store(tmp_path / "out"), identity(settings(tmp_path)), overwrite=False)
    assert "not recorded" in str(err.value) and "wavs" in str(err.value)


def test_checkpoint_identity_is_its_content_not_its_path(tmp_path):
    from batchvoc.models.pretrained import universal_checkpoint

    original = universal_checkpoint()
    digest = "sha256:" + hashlib.sha256(original.read_bytes()).hexdigest()
    assert checkpoint_identity("hifigan_v1_universal", "pretrained") == digest
    copy = tmp_path / "elsewhere" / "g_02500000"
    copy.parent.mkdir()
    shutil.copy(original, copy)
    assert checkpoint_identity("hifigan_v1_universal", str(copy)) == digest
    copy.write_bytes(copy.read_bytes()[:-1] + b"\0")
    assert checkpoint_identity("hifigan_v1_universal", str(copy)) != digest
