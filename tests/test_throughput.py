"""jobs/throughput.py: its speeds are over the audio vocoded, as the report's and the closing line's are."""

import json
from pathlib import Path

from batchvoc.stats import JobSummary, RunSummary, ShardStats
from jobs.throughput import report


def _job(out: Path, shards: list[dict]) -> Path:
    """An output.dir holding summary.json and these stats/<shard>.json payloads."""
    (out / "stats").mkdir(parents=True)
    run = RunSummary(shards=len(shards), rows_ok=5, audio_seconds=10.0, audio_seconds_vocoded=2.0, wall_seconds=5.0,
                     x_realtime=0.4)  # fmt: skip
    summary = JobSummary(rows_ok=5, audio_seconds=10.0, wall_seconds=5.0, x_realtime=0.4, actors=1, this_run=run)
    (out / "summary.json").write_text(json.dumps(summary.to_json()))
    for stats in shards:
        (out / "stats" / f"{stats['shard']}.json").write_text(json.dumps(stats))
    return out


def test_reused_audio_is_no_work_of_the_busy_actor(tmp_path):
    """A retry_failed rerun: 8 s of the 10 s written were reused from an earlier run's files, 2 s vocoded in
    the actor's 1.5 s of shards; busy_x_realtime was 10 / 1.5 = 6.7x."""
    figures = [("a", 2, 2, 4.0, 0.0, 0.5), ("b", 3, 2, 6.0, 2.0, 1.0)]  # rows, reused, audio, vocoded, wall_s
    shards = [ShardStats(shard=name, rows=rows, rows_ok=rows, rows_vocoded=rows - reused, rows_reused=reused,
                         audio_seconds=audio, audio_seconds_vocoded=vocoded, wall_s=wall, actor="actor-0").to_json()
              for name, rows, reused, audio, vocoded, wall in figures]  # fmt: skip
    numbers = report(_job(tmp_path / "out", shards))
    assert abs(numbers["busy_x_realtime"] - 2.0 / 1.5) < 1e-9
    assert abs(numbers["audio_hours"] * 3600 - 10.0) < 1e-9 and abs(numbers["vocoded_hours"] * 3600 - 2.0) < 1e-9
    assert abs(numbers["reused_hours"] * 3600 - 8.0) < 1e-9


def test_stats_from_before_reuse_was_counted_are_all_vocoded(tmp_path):
    """Stats written before audio_seconds_vocoded and rows_reused existed: nothing was reused then, all of
    their audio was vocoded (not none of it)."""
    old = dict(shard="a", rows=3, rows_ok=3, rows_failed=0, frames=300, audio_seconds=6.0, read_s=0.1, vocode_s=1.0,
               write_s=0.2, wall_s=1.5, x_realtime=4.0, actor="actor-0", device="cpu", backend="eager")  # fmt: skip
    new = ShardStats(shard="b", rows=1, rows_ok=1, rows_vocoded=1, audio_seconds=3.0, audio_seconds_vocoded=3.0,
                     wall_s=1.5, actor="actor-0").to_json()  # fmt: skip
    numbers = report(_job(tmp_path / "out", [old, new]))
    assert abs(numbers["busy_x_realtime"] - 9.0 / 3.0) < 1e-9
    assert numbers["reused_hours"] == 0.0 and abs(numbers["vocoded_hours"] * 3600 - 9.0) < 1e-9
