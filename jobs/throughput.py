"""Read a finished job's summary.json and stats/*.json: throughput, per-actor busy time and balance.

python jobs/throughput.py /data/audio/v4
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from batchvoc.stats import JobSummary, ShardStats, Totals, reused_seconds, vocoded_seconds


def report(out_dir: Path) -> dict:
    """Totals over the job's shards: every shard in stats/, whichever run did it (a resumed job's earlier runs
    included; the job's closing line counts its own run only). `busy_x_realtime` excludes start-up: the audio
    vocoded over the busiest actor's shard time; audio an earlier run wrote and a redone shard reused
    (output.retry_failed) is written, not vocoded, and counts in `audio_hours` and `reused_hours` only, like every
    speed of the job's report."""
    summary = JobSummary.from_json(json.loads((out_dir / "summary.json").read_text()))
    payloads = [json.loads(p.read_text()) for p in sorted((out_dir / "stats").glob("*.json"))]
    stats = [ShardStats.from_json(payload) for payload in payloads]
    busy: dict[str, float] = defaultdict(float)
    for s in stats:
        busy[s.actor] += s.wall_s
    totals = Totals.merge(stats)
    audio = totals.audio_seconds
    vocoded = sum(vocoded_seconds(payload) for payload in payloads)  # older stats lack audio_seconds_vocoded
    busiest = max(busy.values()) if busy else 0.0
    return dict(
        rows_ok=summary.rows_ok,
        rows_failed=summary.rows_failed,
        rows_not_run=summary.rows_not_run,
        audio_hours=audio / 3600,
        vocoded_hours=vocoded / 3600,
        reused_hours=sum(reused_seconds(payload) for payload in payloads) / 3600,
        wall_seconds=summary.wall_seconds,
        x_realtime=summary.x_realtime,
        busy_x_realtime=vocoded / busiest if busiest else 0.0,
        actors=len(busy),
        balance_max_over_min=max(busy.values()) / min(busy.values()) if busy else 0.0,
        read_s=totals.read_s,
        vocode_s=totals.vocode_s,
        write_s=totals.write_s,
        backend=summary.backend,
        precision=summary.precision,
        devices=summary.devices,
    )


def main() -> None:
    for folder in sys.argv[1:]:
        result = report(Path(folder))
        print(json.dumps(result))
        print(" | ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
