"""A job that lost its cluster's head: what its summary.json can and cannot count (docs/running.md, how the
workers run). The real two-node run is tests/runner/test_cluster.py's; these drive the job's end directly."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa

from batchvoc.manifest.shards import Shard
from batchvoc.runner.cluster import HEAD_LOST
from batchvoc.runner.dealer import Dealt
from batchvoc.runner.driver import RUNNING_AT_LOSS, Timeline, _end
from batchvoc.sink import ShardSink
from batchvoc.stats import ShardStats
from batchvoc.storage import Store
from tests.jobs import small_job

LOST = f"{HEAD_LOST}: its GCS at 127.0.0.1:1 has taken no connection for 15 s (connection refused)"


def _finish(out, name: str) -> None:
    """Shard `name`'s outputs as a worker writes them: one row's audio, its stats, then its output manifest."""
    sink = ShardSink(out, name, 22050)
    result = sink.write(f"{name}_0", np.zeros(2205, np.float32))
    stats = ShardStats(shard=name, rows=1, rows_ok=1, audio_seconds=0.1, audio_seconds_vocoded=0.1)
    sink.finish([result], pa.table({"id": [f"{name}_0"]}), stats.to_json())


class _RayStoppingWhileAShardFinishes:
    """A joined cluster's stop during which a shard running on another node writes its outputs."""

    def __init__(self, out, name: str) -> None:
        self.out, self.name = out, name

    def stop(self) -> bool:
        time.sleep(0.2)
        _finish(self.out, self.name)
        return False  # joined: left running


def test_a_lost_heads_summary_counts_shards_finished_while_ray_stopped_and_names_those_still_running(tmp_path):
    """Measured on two real nodes, the head SIGKILLed: summary.json counted 0 of 6 shards done though one had
    written its outputs 2 s before summary.json was (counted before the driver's Ray shut down), and nothing in it
    said that shards were still running on the other node (2 finished 17.4 and 20.9 s after the kill, after
    summary.json). Now the end counts again once Ray is down, and lists the shards running at the loss that are
    still not done."""
    settings = small_job(tmp_path, manifest=str(tmp_path / "in"), out_dir=str(tmp_path / "out"))
    out = tmp_path / "out"
    shards = [Shard(name, "m.parquet", k, k + 1, (0,), 0, 10) for k, name in enumerate(("a", "b", "c"))]
    dealt = Dealt(stopped=LOST, running_at_loss=["b", "c"])
    summary = _end(settings, Store(out), shards, {"a", "b", "c"}, time.perf_counter(), time.time(), dealt,
                   _RayStoppingWhileAShardFinishes(out, "b"), Timeline())  # fmt: skip
    written = json.loads((out / "summary.json").read_text())
    assert written["shards_not_written"] == ["a", "c"] and written["rows_ok"] == 1, written  # b counts
    assert written[RUNNING_AT_LOSS] == ["c"] and summary.extra[RUNNING_AT_LOSS] == ["c"]  # c may still finish
    assert written["stopped_early"] == LOST
