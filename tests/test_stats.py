"""Typed stats: JSON round trips, merging, unknown keys kept, the job summary's exit code."""

from collections import Counter

from batchvoc.stats import JobSummary, ShardStats, Totals, top_reasons


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


def test_summary_json_and_exit_code():
    job = Totals.merge([shard("a")])
    summary = JobSummary(job=job, this_run=job, wall_seconds=2.0, actors=1, config={"k": 1})
    payload = summary.to_json()
    assert payload["rows_ok"] == 3 and payload["this_run"]["rows_ok"] == 3 and payload["config"] == {"k": 1}
    assert JobSummary.from_json(payload) == summary
    assert summary.exit_code == 2
    clean = Totals.merge([shard("a", rows_ok=4, rows_failed=0)])
    assert JobSummary(job=clean, this_run=clean).exit_code == 0
    assert JobSummary(job=Totals(), this_run=Totals()).exit_code == 1  # no rows at all
    assert JobSummary(job=clean, this_run=clean, shards_failed=["s"]).exit_code == 1
