"""Resume that cannot lie, as users meet it: real `python -m batchvoc` processes, each with its own local Ray,
killed by their own pid; real files, and a real full file system (a small tmpfs) where this machine lets us mount one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from batchvoc.errors import duration
from tests.conftest import mel_rows, write_manifest
from tests.test_cli import batchvoc

SMALL = ("job=hifigan_v1", "model.checkpoint=random", "+model.hparams.upsample_initial_channel=32",
         "engine.backend=eager", "engine.batch=2", "engine.window=16")  # fmt: skip


def rows_of(out: Path) -> list[dict]:
    return [r for p in sorted((out / "manifest").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def audio_files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in (out / "audio").rglob("*") if p.is_file()}


def assert_every_id_once(out: Path, ids: list[str], ext: str = "wav") -> None:
    table = rows_of(out)
    assert sorted(r["id"] for r in table) == sorted(ids)  # every id exactly once
    assert all(r["status"] == "ok" for r in table), [r["error"] for r in table if r["status"] != "ok"][:3]
    assert audio_files(out) == {r["path"] for r in table} and all(p.endswith(f".{ext}") for p in audio_files(out))
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]


def test_two_jobs_started_together_one_runs_then_other_settings_are_refused(tmp_path):
    rows = mel_rows(60, 80, frames=list(range(20, 80)))
    write_manifest(tmp_path / "in" / "m.parquet", rows, row_group_size=16)
    out = tmp_path / "out"
    args = (*SMALL, f"input.manifest={tmp_path / 'in'}", f"output.dir={out}", "input.shard_seconds=1")
    first, second = batchvoc(*args, wait=False), batchvoc(*args, wait=False)
    outputs = [p.communicate(timeout=400)[0] for p in (first, second)]
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 1], outputs
    refused = outputs[[first.returncode, second.returncode].index(1)]
    assert "another batchvoc job" in refused and "output.dir" in refused and "nothing was done" in refused
    assert_every_id_once(out, [r["id"] for r in rows])
    summary_before = (out / "summary.json").read_bytes()

    other = batchvoc(*args, "output.format=flac", "output.subtype=PCM_24")
    assert other.returncode == 1
    assert "output.format: wav -> flac" in other.stderr and "output.subtype: PCM_16 -> PCM_24" in other.stderr
    assert "output.overwrite=true" in other.stderr
    assert (out / "summary.json").read_bytes() == summary_before

    again = batchvoc(*args, "output.format=flac", "output.subtype=PCM_24", "output.overwrite=true")
    assert again.returncode == 0, again.stderr[-3000:]
    assert_every_id_once(out, [r["id"] for r in rows], ext="flac")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_ok"] == 60 and summary["this_run"]["rows_ok"] == 60


def test_a_killed_job_whose_manifest_changed_is_refused_then_redone_clean(tmp_path):
    rows = mel_rows(90, 80, frames=[30 + i % 20 for i in range(90)], seed=3)
    manifest = tmp_path / "in" / "m.parquet"
    write_manifest(manifest, rows[:80], row_group_size=32)
    out = tmp_path / "out"
    args = (*SMALL, f"input.manifest={tmp_path / 'in'}", f"output.dir={out}", "input.shard_seconds=0.6")
    proc = batchvoc(*args, wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "manifest").glob("*.parquet"))) < 2:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)  # the job's own driver, by its pid
    proc.wait(timeout=60)
    time.sleep(2)
    done_before = sorted(p.name for p in (out / "manifest").glob("*.parquet"))
    assert 2 <= len(done_before) and not (out / "summary.json").exists()

    changed = [dict(r) for r in rows]
    changed[1]["mel"] = np.ascontiguousarray(changed[1]["mel"] + 0.5)  # a row that may be done already
    write_manifest(manifest, changed, row_group_size=32)  # and 10 rows appended
    refused = batchvoc(*args)
    assert refused.returncode == 1
    assert "input.manifest: m.parquet changed (rows 80 -> 90" in refused.stderr, refused.stderr[-2000:]
    assert sorted(p.name for p in (out / "manifest").glob("*.parquet")) == done_before  # nothing mixed in

    redone = batchvoc(*args, "output.overwrite=true")
    assert redone.returncode == 0, redone.stderr[-3000:]
    assert_every_id_once(out, [r["id"] for r in rows])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_ok"] == 90 and summary["shards_skipped"] == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 160 KiB tmpfs of our own (as root), unmounted afterwards; skips where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], capture_output=True,
                          text=True)  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_names_the_cause_counts_its_rows_not_run_and_a_rerun_with_space_completes(tmp_path, small_disk):
    rows = mel_rows(30, 80, frames=[40 + i for i in range(30)])  # ~25 KB of PCM_16 each, ~750 KB in all
    write_manifest(tmp_path / "in" / "m.parquet", rows, row_group_size=8)
    out = small_disk / "out"
    args = (*SMALL, f"input.manifest={tmp_path / 'in'}", f"output.dir={out}", "input.shard_seconds=0.8",
            "hydra.run.dir=" + str(tmp_path / "logs"))  # fmt: skip
    full = batchvoc(*args)
    text = full.stdout + full.stderr
    assert full.returncode == 1, text[-3000:]
    assert "no space left on the device" in text and str(out) in text
    assert "dealing it again" not in text  # a write that will fail again is not retried
    found = re.search(r"(\d+) rows? ok, \d+ suspect, (\d+) failed, (\d+) not run", text)
    assert found, text[-4000:]  # the closing line, or what the job said instead
    ok, failed, not_run = (int(x) for x in found.groups())
    # the rows of the shards not written are not run, not failed: no row's input was bad
    assert ok + not_run == 30 and failed == 0 and not_run > 0, text[-2000:]
    assert re.search(r"\d+ rows? not run \(\d+ shards? not written\): cannot write to output.dir", text), text[-2000:]
    assert "once output.dir can be written, the same command runs them" in text and "retry_failed" not in text
    written = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    if written is not None:  # a disk too full for summary.json too says so (above) and writes none
        assert (written["rows_ok"], written["rows_failed"], written["rows_not_run"]) == (ok, 0, not_run)

    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    rerun = batchvoc(*args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_every_id_once(out, [r["id"] for r in rows])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_ok"] == 30 and 0 < summary["this_run"]["rows_ok"] < 30
    run = summary["this_run"]  # the rows written before the disk filled are reused, not vocoded again
    assert summary["x_realtime"] == pytest.approx(run["audio_seconds_vocoded"] / summary["wall_seconds"])
    # the closing line's speed is this run's: it says how much of the audio this run vocoded
    n = run["rows_reused"]
    reused = f", {n} row{'s' if n != 1 else ''} reused" if n else ""
    said = f"{duration(summary['audio_seconds'])} of audio ({duration(run['audio_seconds_vocoded'])} vocoded "
    assert f"{said}this run{reused})" in rerun.stdout + rerun.stderr, (rerun.stdout + rerun.stderr)[-2000:]


def test_a_disk_too_full_for_the_job_record_stops_before_any_work_naming_output_dir(tmp_path, small_disk):
    from batchvoc.errors import ConfigError
    from batchvoc.models import load_vocoder
    from batchvoc.runner.resume import hold_output
    from batchvoc.settings import JobSettings

    write_manifest(tmp_path / "in" / "m.parquet", mel_rows(4, 80, frames=6))
    out = small_disk / "out"
    out.mkdir()
    settings = JobSettings(manifest=str(tmp_path / "in"), out_dir=str(out), preset="hifigan_v1_universal",
                           checkpoint="random", hparams={"upsample_initial_channel": 32})  # fmt: skip
    _, preset = load_vocoder(settings.preset, settings.checkpoint, settings.hparams)
    with hold_output(settings) as job:
        with open(small_disk / "filler", "wb", buffering=0) as filler:  # every block of the file system taken
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError:
                pass
        with pytest.raises(ConfigError) as err:
            job.claim(settings, preset)
    assert err.value.key == "output.dir" and "no space left on the device" in str(err.value)
    assert str(out) in str(err.value) and not (out / "job.json").exists()


def test_a_rewritten_npy_is_vocoded_again_by_the_rerun_saying_so(tmp_path):
    """A user rewrote a mel_path row's .npy and reran the job: it said `nothing to do` and kept the audio of the
    old mel (.npy files were taken to be immutable). Now each shard's stats keep its mel files' marks (size and
    modification time), and the rerun vocodes the rewritten row again from its file as it is now, saying so, the
    other rows' files untouched; a .npy deleted since (mels removed once vocoded) is no change: its audio stays."""
    rows = mel_rows(3, 80, frames=[40, 32, 24], seed=5)
    (tmp_path / "in" / "mels").mkdir(parents=True)
    for row in rows:
        np.save(tmp_path / "in" / "mels" / f"{row['id']}.npy", row["mel"].reshape(80, row["n_frames"]))
    write_manifest(tmp_path / "in" / "m.parquet", [dict(id=r["id"], mel_path=f"mels/{r['id']}.npy") for r in rows])
    out = tmp_path / "out"
    args = (*SMALL, f"input.manifest={tmp_path / 'in'}", f"output.dir={out}")
    first = batchvoc(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    mtimes = {p: (out / p).stat().st_mtime_ns for p in audio_files(out)}
    np.save(tmp_path / "in" / "mels" / "utt_0000.npy", rows[0]["mel"].reshape(80, 40)[:, :16])  # rewritten: 16 frames
    again = batchvoc(*args)
    console = again.stdout + again.stderr
    assert again.returncode == 0 and "nothing to do" not in console, console[-3000:]
    assert "the .npy mel files of 1 row changed since its shard finished (" in console and "utt_0000" in console
    new = {r["id"]: r for r in rows_of(out)}
    assert new["utt_0000"]["n_samples"] == 16 * 256 and new["utt_0000"]["status"] == "ok"  # the .npy as it is now
    assert {p: (out / p).stat().st_mtime_ns for p in audio_files(out) if "utt_0000" not in p} == {
        p: t for p, t in mtimes.items() if "utt_0000" not in p
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["this_run"]["rows_vocoded"] == 1 and summary["this_run"]["rows_reused"] == 2
    assert summary["rows_ok"] == 3
    (tmp_path / "in" / "mels" / "utt_0001.npy").unlink()  # deleted once vocoded: no change
    last = batchvoc(*args)
    assert last.returncode == 0 and "nothing to do" in last.stdout + last.stderr, last.stderr[-3000:]
    assert (out / new["utt_0001"]["path"]).is_file()
