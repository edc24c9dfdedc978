"""Progress moves per vocoded batch: the driver's poll of a busy actor sees a shard part done."""

import time

from batchvoc.manifest import find_manifest_files, plan_shards
from batchvoc.models.presets import get_preset
from batchvoc.runner.actors import RemoteWorker
from batchvoc.runner.cluster import plan_actors
from tests.conftest import mel_rows, write_manifest
from tests.jobs import small_job


def test_one_shard_reports_audio_seconds_batch_by_batch(tmp_path, ray_cluster):
    manifest = write_manifest(tmp_path / "in" / "m.parquet", mel_rows(8, 80, frames=80), row_group_size=8)
    (shard,) = plan_shards(find_manifest_files(manifest), 10**9)
    settings = small_job(tmp_path, manifest=str(manifest), batch=1, window=40)
    plan = plan_actors(1)
    actor = RemoteWorker.options(**plan.options).remote(settings, "actor-0", plan.threads)
    preset = get_preset("hifigan_v1_universal")
    seconds = shard.frames * preset.hop_length / preset.sample_rate
    running = actor.run.remote(shard)
    seen = []
    while not ray_cluster.wait([running], timeout=0)[0]:
        seen.append(ray_cluster.get(actor.poll.remote())["vocoded_s"])
        time.sleep(0.05)
    ray_cluster.get(running)
    final = ray_cluster.get(actor.poll.remote())
    ray_cluster.kill(actor)
    parts = sorted({s for s in seen if 0 < s < seconds - 1e-6})
    assert len(parts) >= 3, f"progress moved only {len(parts)} times within the shard: {parts}"
    assert abs(final["vocoded_s"] - seconds) < 1e-6 and final["first_audio_at"] is not None


def test_the_bar_ends_at_the_audio_of_the_finished_shards():
    """An actor is not polled after its last shard: the bar takes the finished shards' audio when that is more
    (the demo's bar stopped at 72%), never goes back, and never passes the total."""
    import io

    from tqdm import tqdm

    from batchvoc.runner.dealer import Dealt, _Actor, _show

    bar = tqdm(total=10.0, file=io.StringIO(), mininterval=30)
    crew = [_Actor(handle=None, name="actor-0", vocoded={101: 7.2})]
    result = Dealt()
    _show(bar, crew, result, 10.0)
    assert bar.n == 7.2
    result.stats = {"a": {"audio_seconds": 6.0}, "b": {"audio_seconds": 4.0}}
    _show(bar, crew, result, 10.0)
    assert bar.n == 10.0
    crew[0].vocoded[102] = 5.0  # a restarted actor's polls add up past the total: capped
    _show(bar, crew, result, 10.0)
    assert bar.n == 10.0


def test_log_lines_go_above_the_bar_not_onto_its_line(monkeypatch):
    """A log line written to the console while the bar is shown starts a line of its own (the bar is cleared and
    drawn again under it), as in a job's 'actor-0 ready' line."""
    import io
    import logging
    import sys

    from batchvoc.runner.dealer import progress_bar

    console = io.StringIO()
    monkeypatch.setattr(sys, "stderr", console)
    handler = logging.StreamHandler(sys.stderr)  # a console handler, as Hydra's job logging adds
    logging.getLogger().addHandler(handler)
    try:
        with progress_bar(10.0) as bar:
            bar.update(1.0)
            bar.refresh()
            logging.getLogger("batchvoc.runner.dealer").warning("actor-0 ready in 2.0 s")
    finally:
        logging.getLogger().removeHandler(handler)
    text = console.getvalue()
    at = text.index("actor-0 ready")
    assert "1.0/10.0" in text[:at], "the bar was drawn before the log line"
    assert text[at - 1] in "\r\n", f"the log line shares the bar's line: {text[max(0, at - 40) : at + 20]!r}"
