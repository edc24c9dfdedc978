"""Typed stats: JSON round trips, merging, unknown keys kept, the job summary's exit code."""

import json
from collections import Counter

from batchvoc.stats import JobSummary, RunSummary, ShardStats, Totals, top_reasons


def shard(name, **kw):
    base = dict(shard=name, rows=4, rows_ok=3, rows_failed=1, frames=100, audio_seconds=2.0, wall_s=1.0,
                reasons={"mel is null": 1}, actor="a0")  # fmt: skip
    base.update(kw)
    return ShardStats(**base)


def test_shard_stats_json_round_trip_keeps_unknown_keys():
    stats = shard("s0", ready_s=3.5, load_path="loaded").with_info(dict(device="cpu", started_at=12.0))
    payload = stats.to_json()
    assert payload["started_at"] == 12.0 and payload["device"] == "cpu" and "extra" not in payload
    assert ShardStats.from_json(payload) == stats
    assert ShardStats.from_json({**payload, "new_key": 1}).extra["new_key"] == 1


def test_merge_sums_counts_and_reasons():
    total = Totals.merge([shard("a"), shard("b", rows_suspect=1, rows_ok=2, reasons={"x": 2, "mel is null": 1})])
    assert (total.rows, total.rows_ok, total.rows_suspect, total.rows_failed) == (8, 5, 1, 2)
    assert total.audio_seconds == 4.0 and total.reasons == {"mel is null": 2, "x": 2}
    assert top_reasons(Counter({"a": 3, "b": 2, "c": 1}), keep=1) == {"a": 3, "other reasons": 3}


SUMMARY_KEYS = {  # summary.json's keys as docs/outputs.md documents them; readers (and people) rely on them
    "rows_ok", "rows_suspect", "rows_clipped", "rows_failed", "rows_not_run", "audio_seconds", "wall_seconds",
    "startup_s", "x_realtime", "actors", "actors_ready", "backend", "precision", "devices", "shards",
    "shards_skipped", "shards_failed", "stopped_early", "shards_not_written", "write_fault", "top_failures",
    "top_failures_left_out", "top_failures_left_out_rows", "this_run", "config", "started_at", "timeline",
}  # fmt: skip


def test_summary_json_keys_round_trip_and_unknown_keys_kept():
    summary = JobSummary(rows_ok=3, rows_failed=1, wall_seconds=2.0, actors=1, config={"k": 1},
                         this_run=RunSummary(shards=2, rows_ok=3), timeline={"planned": 0.5})  # fmt: skip
    payload = summary.to_json()
    assert set(payload) == SUMMARY_KEYS
    assert set(payload["this_run"]) == {"shards", "rows_ok", "rows_suspect", "rows_failed", "rows_not_run",
                                        "rows_vocoded", "rows_reused", "audio_seconds", "audio_seconds_vocoded",
                                        "wall_seconds", "x_realtime"}  # fmt: skip
    assert payload["rows_ok"] == 3 and payload["this_run"]["rows_ok"] == 3 and payload["config"] == {"k": 1}
    again = JobSummary.from_json(json.loads(json.dumps(payload)))
    assert again == summary and again.this_run.shards == 2
    newer = JobSummary.from_json({**payload, "new_key": [1]})
    assert newer.extra == {"new_key": [1]} and newer.to_json()["new_key"] == [1]


def test_summary_exit_code():
    assert JobSummary(rows_ok=4).exit_code == 0
    assert JobSummary(rows_ok=3, rows_failed=1).exit_code == 2
    assert JobSummary(rows_ok=3, rows_suspect=1).exit_code == 2
    assert JobSummary(rows_ok=4, shards_failed=["s"]).exit_code == 1
    assert JobSummary(rows_ok=4, rows_failed=2, shards_not_written=["s"]).exit_code == 1
    assert JobSummary(rows_ok=4, rows_not_run=2, shards_not_written=["s"]).exit_code == 1  # not run: not ok, not 2
    assert JobSummary(rows_ok=4, rows_not_run=2).exit_code == 1
    assert JobSummary(rows_failed=16, stopped_early="16 rows all failed the same way").exit_code == 1


def test_a_summary_json_from_before_rows_not_run_is_read_with_its_rows_not_run_apart_from_its_failed():
    """summary.json files written before rows_not_run counted the rows of shards not written as failed (rows_failed,
    this_run's too) and said how many in rows_not_written: read, they say what the current version writes."""
    old = {"rows_ok": 0, "rows_failed": 48, "rows_not_written": 31, "shards_not_written": ["s"] * 31,
           "stopped_early": "the first 16 rows all failed the same way, e.g. x",
           "this_run": {"shards": 48, "rows_failed": 48}}  # fmt: skip
    summary = JobSummary.from_json(old)
    assert (summary.rows_failed, summary.rows_not_run) == (17, 31) and not summary.extra
    assert (summary.this_run.rows_failed, summary.this_run.rows_not_run) == (17, 31)
    assert "rows_not_written" not in summary.to_json() and summary.exit_code == 1
    now = summary.to_json()
    assert JobSummary.from_json(json.loads(json.dumps(now))) == summary  # today's files are read as they are
