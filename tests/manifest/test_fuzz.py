"""Fuzz: manifests mixing good rows (real speech mels) with bad rows of every kind. The good rows are always
read (and, through a whole job on a real local Ray, written); every bad one gets a one-line reason; no row's
fault escapes the reader or stops the shard."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from batchvoc.manifest import check_manifest_files, find_manifest_files, plan_shards, read_shard_rows
from batchvoc.manifest.conventions import MelChecks
from batchvoc.models.presets import get_preset
from tests.jobs import small_job
from tests.manifest.fuzz import write_fuzz_manifest
from tests.speech import speech_mels

PRESET = "hifigan_v1_universal"


@pytest.fixture(scope="module")
def mels(speech):
    return speech_mels(speech, get_preset(PRESET))


@pytest.mark.parametrize("seed", range(12))
def test_reader_fuzz_good_rows_read_bad_rows_reasoned(tmp_path, mels, seed):
    expected = write_fuzz_manifest(tmp_path / "in", mels, seed, rows=80)
    files = check_manifest_files(find_manifest_files(tmp_path / "in"))
    checks = MelChecks.for_preset(get_preset(PRESET))
    got = {}
    for shard in plan_shards(files, target_frames=700):
        cases = pq.read_table(shard.file, columns=["case"]).column("case").to_pylist()
        offset = shard.start  # a shard is rows [start, stop) of its file
        rows = list(read_shard_rows(shard, checks))
        assert [r.index for r in rows] == list(range(shard.rows))
        for row in rows:
            got[cases[offset + row.index]] = row
    assert sorted(got) == sorted(e.case for e in expected)
    for want in expected:
        row = got[want.case]
        if want.good:
            assert row.error is None and row.mel.shape == (80, want.frames), (want.case, row.error)
            assert row.mel.dtype == np.float32 and np.isfinite(row.mel).all()
        else:
            assert row.mel is None and row.error and "\n" not in row.error, (want.case, row.error)


def test_job_fuzz_on_a_real_local_ray(tmp_path, mels, ray_cluster):
    from batchvoc.runner.driver import run_job

    expected = write_fuzz_manifest(tmp_path / "in", mels, seed=2026, rows=90)
    settings = small_job(tmp_path, preset=PRESET, batch=4, cpu_actors=1, shard_seconds=15.0)
    report = run_job(settings)
    assert report.exit_code == 2 and not report.failed_shards
    out = [r for p in sorted((settings.out_path / "manifest").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    by_case = {r["case"]: r for r in out}
    assert sorted(by_case) == sorted(e.case for e in expected) and len(out) == len(expected)
    for want in expected:
        row = by_case[want.case]
        if want.good:
            assert row["status"] == "ok", (want.case, row["error"])
            assert row["n_samples"] == want.frames * 256
            assert (settings.out_path / row["path"]).is_file()
        else:
            assert row["status"] == "error" and row["error"] and "\n" not in row["error"], (want.case, row)
            assert row["path"] is None
    good = sum(e.good for e in expected)
    assert report.summary.rows_ok == good and report.summary.rows_failed == len(expected) - good
    written = sorted(p.relative_to(settings.out_path).as_posix() for p in (settings.out_path).rglob("*.wav"))
    assert written == sorted(r["path"] for r in out if r["status"] == "ok")
