"""The driver's hold on output.dir (runner/resume.py): the chunk plan a job's shards are cut for, kept in job.json."""

import json

import pytest

from batchvoc.chunking import ChunkPlan
from batchvoc.models.presets import get_preset
from batchvoc.runner.identity import RECORD
from batchvoc.runner.resume import PACKING, OutputHold
from batchvoc.storage import Store

PRESET = get_preset("gsv_v4")


def hold(tmp_path, state: str, record: dict) -> OutputHold:
    store = Store(str(tmp_path / "out"))
    store.write_json(RECORD, record)
    return OutputHold(store, token="t", state=state)


def never() -> ChunkPlan:
    raise AssertionError("a resumed job decides nothing")


def test_a_new_job_records_the_plan_it_decides_and_its_rerun_keeps_it_whatever_runs_it(tmp_path):
    plan = ChunkPlan(1000, 12, 16, PRESET.silence, PRESET.hop_length)
    new = hold(tmp_path, "new", {"settings": {"engine.precision": "fp16"}, "input": {}})
    assert new.shard_packing(PRESET, lambda: plan) == plan
    record = json.loads((tmp_path / "out" / RECORD).read_text())
    assert record[PACKING] == {"chunk_frames": 1000, "context": 12, "batch": 16, "gap": None}
    assert record["settings"] == {"engine.precision": "fp16"}  # the identity as claim wrote it
    resumed = OutputHold(new.store, token="t2", state="resumed")
    assert resumed.shard_packing(PRESET, never) == plan  # another batch or device now: the same shards


def test_a_job_an_older_batchvoc_recorded_resumes_with_shards_cut_on_audio(tmp_path):
    older = hold(tmp_path, "resumed", {"settings": {}, "input": {}, "batchvoc": "0.9"})  # no shard_packing
    assert older.shard_packing(PRESET, never) is None  # its cut: its done shards keep their names


@pytest.mark.parametrize("state", ["new", "overwritten"])
def test_a_new_or_overwritten_job_decides_again(tmp_path, state):
    old = {"settings": {}, "input": {}, PACKING: {"chunk_frames": 488, "context": 12, "batch": 1, "gap": None}}
    plan = ChunkPlan(1000, 12, 16, PRESET.silence, PRESET.hop_length)
    assert hold(tmp_path, state, old).shard_packing(PRESET, lambda: plan) == plan
    assert json.loads((tmp_path / "out" / RECORD).read_text())[PACKING]["batch"] == 16
