"""A resumed job keeps every row's check results: real speech (espeak-ng), the pretrained HiFi-GAN V1 universal
weights, a real local Ray. Rows the first run judged suspect or clipped are the same in the output manifest and the
summary after a rerun with nothing to do, and after a rerun that redoes a shard whose audio files were finished
(its output manifest gone, as when a job dies before writing it): those files are reused, not written again; a
file removed from a finished shard is made again, and a shard whose stats were removed is counted again.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchvoc.models.presets import get_preset
from tests.speech import speech_mels

PRESET = get_preset("hifigan_v1_universal")
FIELDS = ("path", "sample_rate", "n_samples", "duration_s", "peak", "clipped", "mel_error", "status", "error")


def _manifest(path, rows: dict[str, np.ndarray]) -> None:
    """Inline mels [n_mels, n_frames] float32 by id, one row group each."""
    table = pa.table({"id": list(rows), "mel": [np.ascontiguousarray(m, np.float32).ravel() for m in rows.values()],
                      "n_frames": [m.shape[1] for m in rows.values()]})  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=1)


def _run(tmp_path):
    from batchvoc.runner.driver import run_job
    from batchvoc.settings import JobSettings

    settings = JobSettings(manifest=str(tmp_path / "in"), out_dir=str(tmp_path / "out"), preset=PRESET.name,
                           checkpoint="pretrained", backend="eager", precision="fp32", batch=1, cpu_actors=1,
                           mel_convention="warn")  # fmt: skip
    report = run_job(settings)
    out = settings.out_path
    rows = {r["id"]: r for p in sorted((out / "manifest").glob("*.parquet")) for r in pq.read_table(p).to_pylist()}
    return report, rows, json.loads((out / "summary.json").read_text())


def _mtimes(out) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in (out / "audio").rglob("*.wav")}


def test_rows_reused_by_a_rerun_keep_status_reason_mel_error_and_clipped(tmp_path, speech, ray_cluster):
    m0, m1, m2, _ = speech_mels(speech, PRESET)
    _manifest(tmp_path / "in" / "a_good.parquet", {"good": m0[:, 60:140]})
    _manifest(tmp_path / "in" / "b_bad.parquet", {
        "plus3": m2[:, 140:240] + 3,  # too loud: clips
        "log10": m1 / np.log(10),  # check.mel_convention=warn lets it through: suspect
        "transposed": np.ascontiguousarray(m0[:, 100:200].T).reshape(80, 100),  # [T, n_mels] stored as [n_mels, T]
        "good_too": m1[:, 100:180],
    })  # fmt: skip
    report, first, summary = _run(tmp_path)
    assert report.exit_code == 2 and not report.failed_shards
    assert first["good"]["status"] == first["good_too"]["status"] == "ok"
    assert first["plus3"]["clipped"] > 0 and summary["rows_clipped"] >= 1
    assert first["log10"]["status"] == "suspect" and "log10" in first["log10"]["error"]
    assert first["transposed"]["status"] == "suspect" and "[T, n_mels]" in first["transposed"]["error"]
    assert summary["rows_suspect"] >= 2
    counts = {k: summary[k] for k in ("rows_ok", "rows_suspect", "rows_failed", "rows_clipped")}
    out = tmp_path / "out"
    written = _mtimes(out)

    report, again, summary = _run(tmp_path)  # nothing to do
    assert report.exit_code == 2 and summary["this_run"]["shards"] == 0
    assert again == first and {k: summary[k] for k in counts} == counts

    bad_shard = first["plus3"]["path"].split("/")[1]
    (out / "manifest" / f"{bad_shard}.parquet").unlink()  # as if the job died before the shard's manifest
    report, redone, summary = _run(tmp_path)
    assert summary["this_run"]["shards"] == 1 and _mtimes(out) == written  # reused, not written again
    # the redone shard's rows were all reused: this run vocoded nothing, so its speed is 0, not the old audio's
    this_run, stats = summary["this_run"], json.loads((out / "stats" / f"{bad_shard}.json").read_text())
    assert (this_run["rows_vocoded"], this_run["rows_reused"], this_run["audio_seconds_vocoded"]) == (0, 4, 0.0)
    assert this_run["audio_seconds"] > 0 and this_run["x_realtime"] == summary["x_realtime"] == 0.0
    assert (stats["rows_vocoded"], stats["rows_reused"], stats["frames"], stats["x_realtime"]) == (0, 4, 0, 0.0)
    for key, row in first.items():
        assert {f: redone[key][f] for f in FIELDS} == {f: row[f] for f in FIELDS}, key
    assert {k: summary[k] for k in counts} == counts and report.exit_code == 2

    # a finished shard's audio file removed since (by hand, a cleanup): the rerun makes that file again, as the
    # first run judged its row, and reuses the shard's other files
    gone = first["log10"]["path"]
    (out / gone).unlink()
    (out / gone).with_name(".DS_Store").write_bytes(b"\0")  # a file browser's: not audio, not counted
    report, remade, summary = _run(tmp_path)
    this_run = summary["this_run"]
    assert (out / gone).exists() and this_run["shards"] == 1 and report.exit_code == 2
    assert (this_run["rows_vocoded"], this_run["rows_reused"]) == (1, 3), this_run
    assert {k: v for k, v in _mtimes(out).items() if k != gone} == {k: v for k, v in written.items() if k != gone}
    for key, row in first.items():
        assert {f: remade[key][f] for f in FIELDS} == {f: row[f] for f in FIELDS}, key
    assert {k: summary[k] for k in counts} == counts

    # its stats removed since: the shard runs again, every audio file reused, and the summary counts it again
    written = _mtimes(out)
    (out / "stats" / f"{bad_shard}.json").unlink()
    report, recounted, summary = _run(tmp_path)
    this_run = summary["this_run"]
    assert (this_run["shards"], this_run["rows_vocoded"], this_run["rows_reused"]) == (1, 0, 4), this_run
    assert (out / "stats" / f"{bad_shard}.json").exists() and _mtimes(out) == written
    assert recounted == first and {k: summary[k] for k in counts} == counts and report.exit_code == 2


def test_retry_failed_vocodes_only_the_failed_rows_again(tmp_path, speech, ray_cluster):
    """A row whose .npy was missing fails; a plain rerun leaves it failed (its shard is done); with
    output.retry_failed=true, once the file is there, that row is vocoded and the shard's ok row is reused."""
    from batchvoc.runner.driver import run_job
    from batchvoc.settings import JobSettings

    m0, m1, *_ = speech_mels(speech, PRESET)
    mels = tmp_path / "in"
    mels.mkdir()
    np.save(mels / "a.npy", m0[:, 60:140])
    rows = {"id": ["a", "b"], "mel_path": ["a.npy", "b.npy"], "n_frames": [80, 80]}
    pq.write_table(pa.table(rows), mels / "m.parquet")

    def run(retry: bool):
        settings = JobSettings(manifest=str(mels / "m.parquet"), out_dir=str(tmp_path / "out"), preset=PRESET.name,
                               checkpoint="pretrained", backend="eager", precision="fp32", batch=1, cpu_actors=1,
                               retry_failed=retry)  # fmt: skip
        report = run_job(settings)
        table = {
            r["id"]: r for p in (settings.out_path / "manifest").glob("*.parquet") for r in pq.read_table(p).to_pylist()
        }
        return report, table, json.loads((settings.out_path / "summary.json").read_text())

    report, first, summary = run(retry=False)
    assert report.exit_code == 2 and first["a"]["status"] == "ok" and first["b"]["status"] == "error"
    assert "b.npy" in first["b"]["error"]
    written = _mtimes(tmp_path / "out")
    np.save(mels / "b.npy", m1[:, 100:180])
    report, again, summary = run(retry=False)  # the shard is done: nothing to do, b stays failed
    assert report.exit_code == 2 and summary["this_run"]["shards"] == 0 and again["b"]["status"] == "error"
    report, retried, summary = run(retry=True)
    assert report.exit_code == 0 and summary["this_run"]["shards"] == 1, summary["this_run"]
    assert retried["b"]["status"] == "ok" and summary["rows_failed"] == 0 and summary["rows_ok"] == 2
    assert {k: v for k, v in _mtimes(tmp_path / "out").items() if k in written} == written  # a's file reused
    # this run vocoded b alone: its speed is over b's audio; a counts as reused, in the shard's rows all the same
    this_run, b_seconds = summary["this_run"], retried["b"]["duration_s"]
    assert (this_run["rows_ok"], this_run["rows_vocoded"], this_run["rows_reused"]) == (2, 1, 1), this_run
    assert this_run["audio_seconds"] == pytest.approx(b_seconds + retried["a"]["duration_s"])
    assert this_run["audio_seconds_vocoded"] == pytest.approx(b_seconds)
    assert summary["x_realtime"] == this_run["x_realtime"] == pytest.approx(b_seconds / this_run["wall_seconds"])
    (stats_file,) = (tmp_path / "out" / "stats").glob("*.json")
    stats = json.loads(stats_file.read_text())
    assert (stats["rows_vocoded"], stats["rows_reused"], stats["frames"]) == (1, 1, 80)
    assert stats["x_realtime"] == pytest.approx(b_seconds / stats["wall_s"])
    report, _, summary = run(retry=True)  # nothing failed now: nothing to do
    assert report.exit_code == 0 and summary["this_run"]["shards"] == 0
