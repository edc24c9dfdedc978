"""runner/early.py: the command line's one job checked, and its Ray begun, before Hydra runs it."""

from __future__ import annotations

import pytest

from batchvoc.cli import compose
from batchvoc.errors import ConfigError
from batchvoc.runner.early import EarlyStart
from batchvoc.settings import JobSettings
from tests.runner.test_driver import three_files


def test_the_command_lines_job_is_checked_once_and_taken_only_with_the_same_settings(tmp_path):
    """runner/early.EarlyStart: the composed job's quick checks (and, with work to do, its Ray) begin before Hydra's
    own compose; `run` takes them only for the same settings. A finished output.dir (summary.json) starts no Ray,
    so this runs without one."""
    three_files(tmp_path / "in", rows=2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.json").write_text("{}")
    cfg = compose(["job=demo", f"input.manifest={tmp_path / 'in'}", f"output.dir={tmp_path / 'out'}"])
    early = EarlyStart()
    early.start(cfg)
    files, ray_thread = early.take(JobSettings.from_config(cfg))
    assert len(files.paths) == 3 and ray_thread is None
    assert early.take(JobSettings.from_config(cfg)) is None  # taken once
    early.start(cfg)
    other = compose(
        ["job=demo", f"input.manifest={tmp_path / 'in'}", f"output.dir={tmp_path / 'out'}", "engine.batch=2"]
    )
    assert early.take(JobSettings.from_config(other)) is None  # another job's settings: run checks its own
    early.start(compose(["job=demo", f"output.dir={tmp_path / 'demo'}"]))  # the demo builds its input first
    assert early.take(JobSettings.from_config(cfg)) is None


def test_a_job_the_checks_refuse_is_refused_by_take_without_checking_again(tmp_path):
    """The quick checks' ConfigError is kept for `run`'s take (a store not reached takes seconds to say so, and
    would say it twice): here the manifest appears between the two, and take still refuses."""
    cfg = compose(["job=demo", f"input.manifest={tmp_path / 'in'}", f"output.dir={tmp_path / 'out'}"])
    early = EarlyStart()
    early.start(cfg)
    three_files(tmp_path / "in", rows=2)  # checked again, the job would now pass
    with pytest.raises(ConfigError, match="no Parquet files") as got:
        early.take(JobSettings.from_config(cfg))
    assert got.value.key == "input.manifest"
    assert early.take(JobSettings.from_config(cfg)) is None  # raised once


def test_the_demo_is_checked_but_for_the_manifest_it_has_not_made_yet(tmp_path):
    """The demo without a manifest (it makes its input when it runs) was not checked at all here: a demo refused by
    its settings made its input and its log folder first. Now all but its manifest is checked; no Ray is begun."""
    demo = ["job=demo", f"output.dir={tmp_path / 'out'}"]
    for extra, key in (
        (["engine.batch=0"], "engine.batch"),
        ([f"model.checkpoint={tmp_path}/no.pth"], "model.checkpoint"),
    ):
        early = EarlyStart()
        early.start(compose([*demo, *extra]))
        assert early.error is not None and early.error.key == key, early.error
    early = EarlyStart()
    early.start(compose(demo))
    assert early.error is None and early.ray_thread is None
    assert early.take(JobSettings.from_config(compose(demo))) is None  # run makes the input, checks and starts Ray


def test_an_interrupted_or_stopped_jobs_summary_still_has_work_for_ray(tmp_path):
    """An interrupted job (Ctrl-C) now writes summary.json, as an early stop does: its rerun has shards to run, so
    its Ray starts early (beside the imports and the plan), as where no summary.json is there."""
    import json

    from batchvoc.runner.early import unfinished
    from batchvoc.storage import Store

    store = Store(str(tmp_path))
    assert unfinished(store)  # no summary.json
    for said, left in (({}, False), ({"rows_ok": 3, "shards_not_written": []}, False),
                       ({"stopped_early": "interrupted (Ctrl-C)", "shards_not_written": ["a"]}, True),
                       ({"shards_not_written": ["a"]}, True), ({"shards_failed": ["a"]}, True)):  # fmt: skip
        (tmp_path / "summary.json").write_text(json.dumps(said))
        assert unfinished(store) is left, said
    (tmp_path / "summary.json").write_text("{not json")
    assert unfinished(store)
