"""The driver on a real local Ray cluster (shared by the session): shards, workers, summary, restart."""

import html
import json
import re
from dataclasses import replace

import pyarrow.parquet as pq
import pytest

from batchvoc.errors import ConfigError
from batchvoc.runner.driver import run_job
from batchvoc.settings import JobSettings
from tests.conftest import mel_rows, random_log_mel, write_manifest
from tests.jobs import read_summary, small_job
from tests.test_stats import SUMMARY_KEYS


def three_files(folder, rows=200, seed=0):
    import numpy as np

    frames = np.random.default_rng(seed).integers(4, 16, rows).tolist()
    all_rows = mel_rows(rows, 80, frames=frames, seed=seed)
    cuts = [0, rows // 3, 2 * rows // 3, rows]
    for k in range(3):
        write_manifest(folder / f"part{k}.parquet", all_rows[cuts[k] : cuts[k + 1]], row_group_size=10)
    return all_rows


def job(tmp_path, **kw) -> JobSettings:
    return small_job(tmp_path, **{"batch": 4, "cpu_actors": 2, "shard_seconds": 0.5, **kw})


def output_rows(out):
    return [row for path in sorted((out / "manifest").glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


def test_two_cpu_actors_write_every_row_exactly_once(tmp_path, ray_cluster):
    rows = three_files(tmp_path / "in")
    settings = job(tmp_path)
    report = run_job(settings)
    assert report.exit_code == 0
    out = output_rows(settings.out_path)
    assert sorted(r["id"] for r in out) == sorted(r["id"] for r in rows)
    assert all(r["status"] == "ok" for r in out)
    wavs = {p.relative_to(settings.out_path).as_posix() for p in (settings.out_path / "audio").rglob("*.wav")}
    assert wavs == {r["path"] for r in out}
    assert set(json.loads((settings.out_path / "summary.json").read_text())) == SUMMARY_KEYS
    summary = read_summary(settings.out_path)
    assert summary == report.summary and not summary.extra
    assert summary.rows_ok == 200 and summary.rows_failed == 0 and summary.actors == 2
    assert summary.shards > 2 and summary.backend == "eager"
    # made in Python, not through Hydra: the config is the settings by their keys (the report reads the preset)
    assert summary.config["model"]["preset"] == settings.preset == "hifigan_v1_universal"
    assert summary.config["engine"]["batch"] == settings.batch
    assert summary.config["output"]["dir"] == str(settings.out_dir)
    assert summary.startup_s > 0 and summary.top_failures == [] and summary.stopped_early is None
    assert [a["load_path"] for a in summary.actors_ready] == ["built", "built"]
    assert all(0 < a["ready_s"] < summary.startup_s for a in summary.actors_ready)
    actors = {json.loads(p.read_text())["actor"] for p in (settings.out_path / "stats").glob("*.json")}
    assert actors == {"actor-0", "actor-1"}
    from jobs.throughput import report as throughput

    numbers = throughput(settings.out_path)
    assert numbers["actors"] == 2 and numbers["rows_ok"] == 200 and numbers["balance_max_over_min"] >= 1.0

    again = run_job(settings)  # everything done: nothing runs, nothing is written
    assert again.summary.shards_skipped == again.summary.shards and again.summary.this_run.shards == 0
    assert again.summary.rows_ok == 200 and again.summary.this_run.rows_ok == 0
    # the job's figures: those of the run that did the work
    assert again.summary.actors == read_summary(settings.out_path).actors == 2


def test_an_output_dir_inside_the_manifest_folder_is_not_read_as_input_on_a_rerun(tmp_path, ray_cluster, caplog):
    rows = mel_rows(6, 80, frames=12)
    write_manifest(tmp_path / "in" / "m.parquet", rows, row_group_size=3)
    settings = job(tmp_path, cpu_actors=1, out_dir=str(tmp_path / "in" / "out"), shard_seconds=0.2)
    caplog.set_level("INFO", "batchvoc")
    first = run_job(settings)
    assert first.exit_code == 0 and first.summary.rows_ok == 6 and first.summary.shards >= 2
    assert caplog.text.count("nothing under output.dir is read as input") == 1  # said once
    assert list((settings.out_path / "manifest").glob("*.parquet"))  # Parquet files inside the input's folder now
    again = run_job(settings)  # the same job: its own output manifest is not input, the plan is the same
    assert again.exit_code == 0 and again.summary.shards == first.summary.shards
    assert again.summary.shards_skipped == first.summary.shards and again.summary.rows_ok == 6
    assert sorted(r["id"] for r in output_rows(settings.out_path)) == sorted(r["id"] for r in rows)
    # another job on the same input, its output.dir elsewhere: the first job's output manifest is not its input
    other = job(tmp_path, cpu_actors=1, out_dir=str(tmp_path / "in" / "audio" / "x"), shard_seconds=0.2)
    caplog.clear()
    second = run_job(other)
    assert second.exit_code == 0 and second.summary.rows_ok == 6 and second.summary.rows_failed == 0
    assert second.summary.shards == first.summary.shards
    said = f"left out the output manifests of 1 batchvoc job, {first.summary.shards} files in all: {settings.out_path}"
    assert caplog.text.count(said) == 1, caplog.text  # said once, as a warning
    assert [r.levelname for r in caplog.records if said in r.getMessage()] == ["WARNING"]


def steps(log_text: str) -> list[str]:
    """The timeline steps a job logged (`N s after the process started: STEP`), in the order logged."""
    return re.findall(r"s after the process started: ([^;\n]+)", log_text)  # what follows a `;` aside


def test_a_rerun_with_nothing_to_do_reads_no_weights_and_joins_no_ray(tmp_path, ray_cluster, caplog):
    """A finished job's rerun plans, checks its identity and rewrites summary.json and report.html with the same
    counts and exit code, without reading the weights, joining Ray or starting actors (those timeline steps are
    logged where they happen, as the first run's are); output.retry_failed=true still runs the failed rows."""
    rows = mel_rows(6, 80, frames=12)
    rows[1]["n_mels"] = 100  # a failed row: exit code 2, and a shard for output.retry_failed to run again
    write_manifest(tmp_path / "in" / "m.parquet", rows, row_group_size=3)
    settings = job(tmp_path, cpu_actors=1, shard_seconds=0.2)
    caplog.set_level("INFO", "batchvoc")
    first = run_job(settings)
    assert first.exit_code == 2 and first.summary.shards >= 2
    assert {"weights read", "Ray joined", "actors created", "actor-0 ready"} <= set(steps(caplog.text))
    written = json.loads((settings.out_path / "summary.json").read_text())
    report_html = settings.out_path / "report.html"
    report_html.unlink()

    caplog.clear()
    again = run_job(settings)
    assert steps(caplog.text) == ["checked", "planned", "report written"], caplog.text
    assert f"{first.summary.shards} shards planned, {first.summary.shards} already done, 0 to run" in caplog.text
    assert again.exit_code == 2 and again.summary.this_run.shards == 0
    rewritten = json.loads((settings.out_path / "summary.json").read_text())
    kept = ("rows_ok", "rows_suspect", "rows_clipped", "rows_failed", "rows_not_run", "audio_seconds", "shards",
            "top_failures", "wall_seconds", "startup_s", "actors", "actors_ready", "timeline")  # fmt: skip
    assert {k: rewritten[k] for k in kept} == {k: written[k] for k in kept}
    assert (rewritten["rows_ok"], rewritten["rows_failed"], rewritten["shards_skipped"]) == (5, 1, first.summary.shards)
    assert "This run had nothing to do" in html.unescape(report_html.read_text())

    caplog.clear()
    retried = run_job(replace(settings, retry_failed=True))  # the failed row's shard runs again: weights, Ray
    assert {"weights read", "Ray joined", "actors created"} <= set(steps(caplog.text)), caplog.text
    assert retried.exit_code == 2 and retried.summary.this_run.shards == 1
    assert (retried.summary.rows_ok, retried.summary.rows_failed) == (5, 1)


def test_bad_rows_give_exit_code_2(tmp_path, ray_cluster):
    rows = mel_rows(5, 80, frames=6)
    rows[2]["n_mels"] = 100
    write_manifest(tmp_path / "in" / "m.parquet", rows)
    report = run_job(job(tmp_path, cpu_actors=1))
    assert report.exit_code == 2
    assert report.summary.rows_ok == 4 and report.summary.rows_failed == 1
    (top,) = report.summary.top_failures
    assert top["rows"] == 1 and top["example_id"] == "utt_0002" and "100" in top["reason"], top
    assert report.stopped is None


def test_ids_whose_audio_paths_clash_fail_the_later_row_and_the_job_writes_every_other_row(tmp_path, ray_cluster):
    """`a` and `a.wav/b` cannot both have their files (audio/<shard>/a.wav is a file, or a folder): the write
    failed, as a permanent fault of the whole shard, every row not run, again on every rerun. Now the later row is
    refused when planned, naming the earlier id; the rest are written."""
    rows = mel_rows(3, 80, frames=6)
    for row, key in zip(rows, ["a", "a.wav/b", "good"], strict=True):
        row["id"] = key
    write_manifest(tmp_path / "in" / "m.parquet", rows)
    settings = job(tmp_path, cpu_actors=1, shard_seconds=1000)
    report = run_job(settings)
    s = report.summary
    assert report.exit_code == 2 and (s.rows_ok, s.rows_failed, s.rows_not_run) == (2, 1, 0), s
    out = {r["id"]: r for r in output_rows(settings.out_path)}
    assert out["a.wav/b"]["status"] == "error" and out["a.wav/b"]["path"] is None
    place = f"row 1 of {tmp_path / 'in' / 'm.parquet'}"
    assert out["a.wav/b"]["error"] == ("id 'a.wav/b': it needs a folder 'a.wav' where the audio file of id 'a' "
                                       f"(earlier in the manifest) goes ({place})")  # fmt: skip
    for key in ("a", "good"):
        assert out[key]["status"] == "ok" and (settings.out_path / out[key]["path"]).is_file()
    assert s.top_failures[0]["example_id"] == "a.wav/b"
    again = run_job(settings)  # a rerun: nothing left to do, the same outcome
    assert again.exit_code == 2 and again.summary.this_run.shards == 0 and again.summary.rows_ok == 2


def test_reasons_past_the_top_five_are_counted_and_said_not_dropped(tmp_path, ray_cluster, caplog):
    import numpy as np

    rows = mel_rows(16, 80, frames=6)
    kinds = {  # six kinds of reason, most rows first: the last (1 row) is the one past the top 5
        "n_mels": range(1, 4), "values": range(4, 7), "nan": range(7, 9), "id_up": range(9, 11),
        "null": range(11, 13), "absolute": range(13, 14),
    }  # fmt: skip
    for i in kinds["n_mels"]:
        rows[i]["n_mels"] = 100
    for i in kinds["values"]:
        rows[i]["n_frames"] = 7
    for i in kinds["nan"]:
        rows[i]["mel"] = np.full(80 * 6, np.nan, np.float32)
    for i in kinds["id_up"]:
        rows[i]["id"] = f"../up_{i}"
    for i in kinds["null"]:
        rows[i]["mel"] = None
    rows[13]["id"] = "/absolute"
    write_manifest(tmp_path / "in" / "m.parquet", rows)
    caplog.set_level("WARNING", logger="batchvoc.runner.driver")
    report = run_job(job(tmp_path, cpu_actors=1, shard_seconds=1000))
    summary = report.summary
    assert summary.rows_failed == 13 and report.exit_code == 2
    assert [t["rows"] for t in summary.top_failures] == [3, 3, 2, 2, 2]
    assert "absolute" not in json.dumps(summary.top_failures)
    assert (summary.top_failures_left_out, summary.top_failures_left_out_rows) == (1, 1)
    assert read_summary(settings_out := tmp_path / "out").top_failures_left_out == 1
    said = f"… and 1 more reason (1 row): see the `error` column of the output manifest, {settings_out}/manifest/"
    assert said in caplog.text, caplog.text
    errors = [r["error"] for r in output_rows(settings_out) if r["status"] == "error"]
    assert sum(len(kind) for kind in kinds.values()) == len(errors) == 13 and any("absolute" in e for e in errors)


def test_a_job_whose_first_rows_all_fail_alike_stops_early_with_the_reason(tmp_path, ray_cluster, caplog):
    rows = mel_rows(300, 80, frames=6)
    for row in rows:
        row["n_frames"] = 7  # the mel holds 80 x 6 values: every row is refused, for one reason
    write_manifest(tmp_path / "in" / "m.parquet", rows, row_group_size=4)
    caplog.set_level("WARNING", logger="batchvoc.runner.driver")
    report = run_job(job(tmp_path, cpu_actors=1, shard_seconds=0.1))
    assert report.exit_code == 1 and report.stopped, report.summary
    assert "rows, from" in report.stopped and "shards of its one input file, all failed the same way" in report.stopped
    assert "stopped early" in caplog.text
    done = list((tmp_path / "out" / "manifest").glob("*.parquet"))
    assert 0 < len(done) < report.summary.shards, "it did not stop before the end"
    top = report.summary.top_failures[0]
    # rows_failed: the rows that ran and failed; those of the shards not run after the stop are rows_not_run
    assert top["rows"] == report.summary.rows_failed >= 16 and report.summary.rows_not_run > 0
    assert report.summary.rows_failed + report.summary.rows_not_run == 300
    assert top["example_id"].startswith("utt_")


def test_an_early_stop_counts_rows_not_run_apart_from_failed_ones_everywhere_and_a_rerun_runs_them(
    tmp_path, ray_cluster, caplog
):
    """A fresh user's report: an early-stopped job said "the first 16 rows all failed", then "17 rows error", then
    "48 failed": the rows of the shards it never ran counted as failed. They are rows_not_run now, apart from the
    rows that ran and failed, in summary.json (this_run's too), the console's closing lines and report.html; the
    exit code stays 1, and a rerun (the missing .npy files made meanwhile) runs exactly those rows."""
    import numpy as np
    import pyarrow as pa

    from batchvoc.__main__ import log_closing

    folder = tmp_path / "in"
    folder.mkdir()
    ids = [f"u{i:03d}" for i in range(60)]  # mel_path rows whose .npy files are not there yet: each row fails alike
    table = {"id": ids, "mel_path": [f"{i}.npy" for i in ids], "n_frames": [6] * 60}
    pq.write_table(pa.table(table), folder / "m.parquet", row_group_size=4)
    settings = job(tmp_path, cpu_actors=1, shard_seconds=0.1)
    caplog.set_level("INFO", logger="batchvoc")
    report = run_job(settings)
    log_closing(report, settings.out_url)  # the console's last lines, as `python -m batchvoc` ends
    s, out = report.summary, settings.out_path
    assert report.exit_code == 1 and s.stopped_early and s.exit_code == 1, s
    ran = output_rows(out)
    assert ran and all(r["status"] == "error" for r in ran) and len(ran) < 60, "it did not stop before the end"
    assert (s.rows_ok, s.rows_suspect, s.rows_failed, s.rows_not_run) == (0, 0, len(ran), 60 - len(ran))
    assert s.top_failures[0]["rows"] == s.rows_failed
    assert s.shards_not_written and report.failed_shards == s.shards_not_written  # the shards of the rows not run
    this_run = s.this_run
    assert (this_run.rows_failed, this_run.rows_not_run) == (s.rows_failed, s.rows_not_run)
    on_disk = json.loads((out / "summary.json").read_text())
    assert (on_disk["rows_failed"], on_disk["rows_not_run"]) == (s.rows_failed, s.rows_not_run)
    assert on_disk["this_run"]["rows_not_run"] == s.rows_not_run and "rows_not_written" not in on_disk
    console = caplog.text
    assert f"batchvoc: 0 rows ok, 0 suspect, {s.rows_failed} failed, {s.rows_not_run} not run, 0 clipped; " in console
    said = f"stopped early: {len(report.failed_shards)} shards ({s.rows_not_run} rows) not run. Once the cause above is"
    assert said in console and "the same command runs exactly those" in console, console
    assert f"{s.rows_failed} rows error: " in console and f"{s.rows_failed + s.rows_not_run} failed" not in console
    page = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", (out / "report.html").read_text())))
    assert f"{s.rows_failed} rows failed" in page and f"{s.rows_not_run} rows not run" in page, page[:2000]
    assert "The job stopped early: the first" in page
    assert f"{s.rows_not_run} rows were not run ({len(s.shards_not_written)} shards not finished)" in page

    rng = np.random.default_rng(0)  # the missing mels made: a rerun runs the rows not run, the failed stay failed
    for i in ids:
        np.save(folder / f"{i}.npy", random_log_mel(rng, 80, 6))
    caplog.clear()
    again = run_job(settings)
    log_closing(again, settings.out_url)
    s2 = again.summary
    assert again.exit_code == 2 and s2.stopped_early is None and not again.failed_shards
    assert (s2.rows_ok, s2.rows_failed, s2.rows_not_run) == (s.rows_not_run, s.rows_failed, 0)
    assert s2.shards_not_written == [] and s2.shards_skipped == s.shards - len(s.shards_not_written)
    assert (s2.this_run.rows_ok, s2.this_run.rows_failed, s2.this_run.rows_not_run) == (s.rows_not_run, 0, 0)
    assert sorted(r["id"] for r in output_rows(out)) == ids  # every row once
    assert " not run" not in caplog.text and f", {s.rows_failed} failed, 0 clipped; " in caplog.text


def test_one_bad_input_file_among_good_ones_never_stops_the_job(tmp_path, ray_cluster, caplog):
    """The job's first shard, a whole file of rows failing alike, stopped the job: the other files' good rows were
    left not run, the console asking to fix the input first. One file is no evidence of a setting every row meets
    (DESIGN.md: bad input never stops the job): the job goes on, every good row is written, exit 2."""
    bad = mel_rows(20, 80, frames=6, prefix="bad")  # one shard of 20 rows (>= EARLY_ROWS), dealt first (plan order)
    for row in bad:
        row["n_frames"] = 40  # the mel holds 80 x 6 values: every row refused, for one reason
    write_manifest(tmp_path / "in" / "a_bad.parquet", bad)
    for k, name in enumerate(["b_good", "c_good"]):
        write_manifest(tmp_path / "in" / f"{name}.parquet", mel_rows(8, 80, frames=6, prefix=name, seed=k))
    caplog.set_level("INFO", logger="batchvoc")
    report = run_job(job(tmp_path, cpu_actors=1, shard_seconds=10))
    s = report.summary
    assert report.stopped is None and s.stopped_early is None and "stopped early" not in caplog.text
    assert report.exit_code == 2 and (s.rows_ok, s.rows_failed, s.rows_not_run) == (16, 20, 0), s
    out = output_rows(tmp_path / "out")
    assert sorted(r["id"] for r in out if r["status"] == "ok") == sorted(f"{n}_{i:04d}" for n in ("b_good", "c_good")
                                                                          for i in range(8))  # fmt: skip
    assert all((tmp_path / "out" / r["path"]).is_file() for r in out if r["status"] == "ok")


def test_every_input_file_failing_alike_stops_early_and_the_same_command_runs_exactly_the_rest(
    tmp_path, ray_cluster, caplog
):
    """Every file's rows fail alike (their .npy mels not made yet): the evidence spans the job, so it stops early;
    the console says what was not run and that the same command runs exactly those once the cause is fixed, which
    it does."""
    import numpy as np
    import pyarrow as pa

    from batchvoc.__main__ import log_closing

    folder = tmp_path / "in"
    folder.mkdir()
    ids = {name: [f"{name}{i:02d}" for i in range(20)] for name in ("a", "b", "c")}
    for name, keys in ids.items():
        table = {"id": keys, "mel_path": [f"{key}.npy" for key in keys], "n_frames": [6] * 20}
        pq.write_table(pa.table(table), folder / f"{name}.parquet", row_group_size=4)
    settings = job(tmp_path, cpu_actors=1, shard_seconds=0.1)
    caplog.set_level("INFO", logger="batchvoc")
    report = run_job(settings)
    log_closing(report, settings.out_url)
    s = report.summary
    assert report.exit_code == 1 and s.stopped_early and "input files, all failed the same way" in s.stopped_early
    assert s.rows_failed >= 16 and s.rows_not_run > 0 and s.rows_failed + s.rows_not_run == 60
    said = (f"batchvoc: stopped early: {len(report.failed_shards)} shards ({s.rows_not_run} rows) not run. Once the "
            "cause above is fixed where the job reads it again (a mel_path row's .npy file, a worker's keys or "
            f"environment), the same command runs exactly those; the {s.rows_failed} rows that ran and failed stay "
            "failed, unless output.retry_failed=true is added")  # fmt: skip
    assert said in caplog.text, caplog.text
    rng = np.random.default_rng(0)
    for key in (key for keys in ids.values() for key in keys):
        np.save(folder / f"{key}.npy", random_log_mel(rng, 80, 6))
    again = run_job(settings)  # the same command: exactly the rows not run, the failed ones stay failed
    s2 = again.summary
    assert again.exit_code == 2 and s2.stopped_early is None and s2.this_run.rows_ok == s.rows_not_run
    assert (s2.rows_ok, s2.rows_failed, s2.rows_not_run) == (s.rows_not_run, s.rows_failed, 0)


def test_a_job_whose_rows_all_failed_alike_by_its_last_shard_did_not_stop_early(tmp_path, ray_cluster):
    rows = mel_rows(20, 80, frames=6)  # more than EARLY_ROWS, in one shard: the stop would come after the end
    for row in rows:
        row["n_frames"] = 7
    write_manifest(tmp_path / "in" / "m.parquet", rows)
    report = run_job(job(tmp_path, cpu_actors=1, shard_seconds=1000))
    assert report.stopped is None and report.summary.stopped_early is None and report.summary.shards == 1
    assert report.exit_code == 2 and report.summary.rows_failed == 20


def test_bad_configuration_stops_before_any_work(tmp_path, ray_cluster):
    three_files(tmp_path / "in", rows=6)
    for key, change in [("model.preset", dict(preset="nope")), ("model.checkpoint", dict(checkpoint=None)),
                        ("model.checkpoint", dict(checkpoint=str(tmp_path / "missing.pth"))),
                        ("input.manifest", dict(manifest=str(tmp_path / "nothing"))),
                        ("engine.backend", dict(backend="warp")), ("output.format", dict(fmt="mp3")),
                        ("cluster.cpu_actors", dict(cpu_actors=64))]:  # fmt: skip
        with pytest.raises(ConfigError) as err:
            run_job(job(tmp_path, **change))
        assert err.value.key == key, (key, err.value)
    assert not (tmp_path / "out" / "audio").exists()


def test_a_worker_killed_mid_job_has_its_shards_dealt_again(tmp_path, ray_cluster, caplog):
    """Kill one of this job's own actors, found by the pid it reports (never by process title)."""
    import os
    import signal
    import threading
    import time

    caplog.set_level("WARNING", logger="batchvoc.runner")
    rows = three_files(tmp_path / "in", rows=120, seed=2)
    settings = job(tmp_path, hparams={"upsample_initial_channel": 64}, shard_seconds=0.3)
    started: list[dict] = []
    result = {}
    runner = threading.Thread(
        target=lambda: result.setdefault("report", run_job(settings, on_actor_ready=started.append))
    )
    runner.start()
    deadline = time.time() + 120
    while time.time() < deadline and len(list((settings.out_path / "manifest").glob("*.parquet"))) < 2:
        time.sleep(0.05)
    assert started, "no actor reported ready"
    victim = started[0]["pid"]
    assert victim != os.getpid()
    os.kill(victim, signal.SIGKILL)
    runner.join(timeout=300)
    report = result["report"]
    assert report.exit_code == 0, report.summary
    out = output_rows(settings.out_path)
    assert sorted(r["id"] for r in out) == sorted(r["id"] for r in rows)
    assert not [p for p in settings.out_path.rglob("*") if ".partial-" in p.name]
    stats = [json.loads(p.read_text()) for p in (settings.out_path / "stats").glob("*.json")]
    after = {s["pid"] for s in stats if s["actor"] == started[0]["actor"]} - {victim}
    assert after, "Ray did not restart the killed actor (no shard ran on a new process of it)"
    # the console says it once, naming the actor and both processes (only Ray's own lines said so before)
    said = [r.getMessage() for r in caplog.records if "Ray restarted it" in r.getMessage()]
    assert len(said) == 1 and f"(pid {victim} on" in said[0] and f"(pid {min(after)} now)" in said[0], said


def test_a_one_shard_job_that_ends_between_progress_polls_has_its_start_up(tmp_path, ray_cluster, caplog):
    """startup_s and the timeline's first audio come back with the shard itself, not only through the driver's
    progress polls (a small job's only shard can end before the first poll answers); every step of the timeline
    is logged, once; the actor's start is split into its own steps."""
    caplog.set_level("INFO", logger="batchvoc")
    write_manifest(tmp_path / "in" / "m.parquet", mel_rows(3, 80, frames=6))
    summary = run_job(job(tmp_path, cpu_actors=1, shard_seconds=100)).summary
    assert summary.shards == 1 and summary.rows_ok == 3
    assert summary.startup_s is not None and summary.startup_s > summary.actors_ready[0]["ready_s"]
    events = summary.timeline
    assert events["actor-0 ready"] <= events["first shard begun"] <= events["first audio written"], events
    # the actor's own steps (its clock is this host's): its process, its imports, its constructor, then ready
    steps = [events[f"actor-0 {step}"] for step in ("process started", "imported", "created", "ready")]
    assert steps == sorted(steps), events
    assert events["first audio written"] <= events["shards done"] <= events["report written"], events
    said = [r.getMessage() for r in caplog.records]
    lines = [line for line in said if "s after the process started: " in line]
    logged = [line.split(": ", 1)[1].split("; ")[0] for line in lines]  # what a line says after its step aside
    # the actor's steps before its ready are said in its ready line, not logged after later steps' lines
    starts = [f"actor-0 {step}" for step in ("process started", "imported", "created")]
    assert sorted(logged + starts) == sorted(events), logged
    ready = next(line for line in lines if ": actor-0 ready; its " in line)
    assert all(f"{step} at " in ready for step in ("process started", "imported", "created")), ready
    times = [float(line.split(" s after", 1)[0]) for line in lines]
    assert times == sorted(times), lines  # the lines never go back in time
    # the actors' steps are logged as dealing learns them, not after the job's end
    assert logged.index("first shard begun") < logged.index("first audio written") < logged.index("shards done")


def test_shards_are_cut_for_the_engines_batches_and_a_rerun_on_another_batch_keeps_them(tmp_path, ray_cluster):
    """Issue 14: a new job cuts its shards where their rows fill whole batches of the actors' plan and records that
    plan in job.json; a rerun with another engine.batch (other hardware) cuts the same shards: every one skipped."""
    import numpy as np

    from batchvoc.chunking import ChunkPlan
    from batchvoc.manifest import find_manifest_files, plan_shards

    frames = np.random.default_rng(3).integers(20, 61, 120).tolist()
    write_manifest(tmp_path / "in" / "m.parquet", mel_rows(120, 80, frames=frames), row_group_size=40)
    settings = job(tmp_path, cpu_actors=1, batch=4, window=100, shard_seconds=5)
    first = run_job(settings)
    assert first.exit_code == 0 and first.summary.rows_ok == 120
    recorded = json.loads((settings.out_path / "job.json").read_text())["shard_packing"]
    assert recorded["batch"] == 4 and recorded["chunk_frames"] == 100 and recorded["gap"] is None
    plan = ChunkPlan(100, recorded["context"], 4, -11.5, 256)
    files, target = find_manifest_files(tmp_path / "in"), int(5 * 22050 / 256)
    names = sorted(p.stem for p in (settings.out_path / "manifest").glob("*.parquet"))
    assert names == sorted(s.name for s in plan_shards(files, target, tmp_path / "in", packing=plan))
    assert names != sorted(s.name for s in plan_shards(files, target, tmp_path / "in"))  # not cut on audio alone
    again = run_job(job(tmp_path, cpu_actors=1, batch=8, window=100, shard_seconds=5))
    assert again.exit_code == 0 and again.summary.shards == first.summary.shards
    assert again.summary.shards_skipped == again.summary.shards and again.summary.this_run.shards == 0
