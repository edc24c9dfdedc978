"""report.html from real jobs on the local Ray, opened in real headless Chromium."""

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from batchvoc.manifest.conventions import MelChecks
from batchvoc.models.mel import log_mel
from batchvoc.models.presets import get_preset
from batchvoc.report import data as jobdata
from batchvoc.report import write_report
from batchvoc.runner.driver import run_job
from batchvoc.settings import JobSettings
from tests import browser, jobs
from tests.conftest import mel_rows, write_manifest

ROOT = Path(__file__).resolve().parent.parent
needs_chromium = pytest.mark.skipif(browser.CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")


def small_job(tmp_path, rows: int = 24, **kw) -> JobSettings:
    """A job with bad rows of three kinds on two CPU actors (a small random HiFi-GAN: fast on 2 cores)."""
    frames = np.random.default_rng(1).integers(8, 30, rows).tolist()
    items = mel_rows(rows, 80, frames=frames)
    items[2]["n_mels"], items[9]["n_mels"] = 100, 128
    items[5]["id"] = "../outside"
    items[7]["mel"] = np.full_like(items[7]["mel"], np.nan)
    write_manifest(tmp_path / "in" / "a.parquet", items[: rows // 2], row_group_size=4)
    write_manifest(tmp_path / "in" / "b.parquet", items[rows // 2 :], row_group_size=4)
    config = {"input": {"manifest": str(tmp_path / "in")}, "model": {"preset": "hifigan_v1_universal"},
              "check": {"max_mel_error": 3.0}}  # fmt: skip
    return jobs.small_job(tmp_path, **{"batch": 4, "cpu_actors": 2, "shard_seconds": 0.3, "subtype": "FLOAT",
                                       "config": config, **kw})  # fmt: skip


def check_page(page: Path, tmp_path: Path, min_images: int) -> browser.PageVisit:
    """The page loads with no console error, every picture decodes, nothing is fetched from anywhere."""
    text = page.read_text()
    assert not re.search(r"""(src|href)=["'](?!data:)""", text), "the report must not load anything"
    visit = browser.visit(page, tmp_path / "report.png")
    assert visit.errors == []
    assert len(visit.images) >= min_images
    for image in visit.images:
        assert image["complete"] and image["width"] > 100 and image["height"] > 100, image
    assert (tmp_path / "report.png").stat().st_size > 10_000
    return visit


@needs_chromium
def test_every_job_ends_with_a_report_that_renders(tmp_path, ray_cluster):
    settings = small_job(tmp_path)
    report = run_job(settings)
    assert report.exit_code == 2
    page = settings.out_path / "report.html"
    visit = check_page(page, tmp_path, min_images=4)  # throughput, timeline, shard timing, failures
    assert "batchvoc report: hifigan_v1_universal" in visit.title
    text = visit.text
    assert "20\nrows ok" in text and "4\nrows failed" in text
    for reason in ("n_mels is 100, the model takes 80 mel bands", "leaves the output folder", "NaN or Inf"):
        assert reason in text
    assert re.search(r"\b2\tn_mels is 1\d\d", text)  # the two n_mels rows count as one kind of reason
    differ = r"n_mels is 1\d\d, the model takes 80 mel bands \(the numbers of id \S+; the other rows' differ: see"
    assert re.search(differ, text)  # 100 and 128: the table says whose numbers it shows
    assert "actor-0" in text and "actor-1" in text and "Shard timing" in text
    assert "No row was checked" in text  # checkpoint=random: the round trip is off, mel_error all null
    assert "check.max_mel_error" in text and "hifigan_v1_universal" in text  # the settings table

    # re-rendered from the files alone, by the command line
    page.unlink()
    result = subprocess.run([sys.executable, "-m", "batchvoc.report", str(settings.out_path)], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert page.is_file() and "4\nrows failed" in browser.visit(page).text
    missing = subprocess.run([sys.executable, "-m", "batchvoc.report", str(tmp_path / "nothing")], cwd=ROOT,
                             capture_output=True, text=True)  # fmt: skip
    assert missing.returncode == 1 and "no batchvoc job output" in missing.stderr

    again = run_job(settings)  # a rerun with nothing left to do still reports the whole job
    assert again.summary.shards_skipped == again.summary.shards
    visit = check_page(page, tmp_path, min_images=4)
    assert "4\nrows failed" in visit.text  # the job's figures stay those of the run that did the work
    assert again.summary.this_run.shards == 0 and again.summary.started_at == report.summary.started_at
    assert "actor-0" in visit.text and "actor-1" in visit.text  # the working run's actors, still drawn


@needs_chromium
def test_mel_error_distribution_and_worst_rows(tmp_path, ray_cluster):
    """With a mel_error column (the round-trip check's), the report shows its distribution and the worst rows'
    input and output mels. The column here is a real round trip through the front end, computed by the test."""
    settings = small_job(tmp_path, rows=12, cpu_actors=1)
    run_job(settings)
    out, fe = settings.out_path, get_preset("hifigan_v1_universal").front_end
    ids = []
    for path in (out / "manifest").glob("*.parquet"):
        table = pq.read_table(path)
        mels = jobdata.input_mels(str(tmp_path / "in"), table.column("id").to_pylist(), 80)
        errors = []
        for row in table.to_pylist():
            if row["status"] == "ok":
                audio, _ = sf.read(out / row["path"], dtype="float32")
                errors.append(float(np.abs(log_mel(audio, fe).numpy() - mels[row["id"]]).mean()))
                ids.append((errors[-1], row["id"]))
            else:
                errors.append(None)
        column = table.schema.get_field_index("mel_error")  # null here: checkpoint=random turns the check off
        pq.write_table(table.set_column(column, "mel_error", pa.array(errors, pa.float32())), path)
    write_report(str(out))
    visit = check_page(out / "report.html", tmp_path, min_images=4 + 1 + 6)
    worst = [key for _, key in sorted(ids, reverse=True)[:6]]
    for key in worst:
        assert f"{key}: mel error" in visit.text
    assert sum(1 for image in visit.images if image["alt"].startswith("input and output mel of")) == 6


def nested_manifest(path: Path, rows: list[dict]) -> None:
    """Inline nested-list mels [n_mels][n_frames] and no n_frames column (docs/input.md: n_frames is optional)."""
    mel = pa.array([r["mel"].reshape(80, -1).tolist() for r in rows], pa.list_(pa.list_(pa.float32())))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [r["id"] for r in rows], "mel": mel}), path)


def test_worst_rows_pictures_for_a_nested_list_manifest_without_n_frames(tmp_path, ray_cluster, caplog):
    rows = mel_rows(6, 80, frames=[9, 14, 11, 20, 8, 16])
    nested_manifest(tmp_path / "in" / "m.parquet", rows)
    config = {"input": {"manifest": str(tmp_path / "in")}, "model": {"preset": "hifigan_v1_universal"}}
    settings = jobs.small_job(tmp_path, cpu_actors=1, batch=4, config=config)
    assert run_job(settings).exit_code == 0
    out = settings.out_path
    for path in (out / "manifest").glob("*.parquet"):  # as the round-trip check writes it (off: random weights)
        table = pq.read_table(path)
        errors = pa.array([float(k) for k in range(table.num_rows)], pa.float32())
        pq.write_table(table.set_column(table.schema.get_field_index("mel_error"), "mel_error", errors), path)
    with caplog.at_level("WARNING"):
        write_report(str(out))
        result = subprocess.run([sys.executable, "-m", "batchvoc.report", str(out)], cwd=ROOT, capture_output=True,
                                text=True)  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr and "failed" not in result.stderr, result.stderr
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("batchvoc.report")]
    assert (out / "report.html").read_text().count('alt="input and output mel of') == 6

    # a worst row's audio file removed since: its picture gives way to a note, the rest of the section stands
    gone = pq.read_table(next((out / "manifest").glob("*.parquet"))).to_pylist()[-1]
    (out / gone["path"]).unlink()
    caplog.clear()
    with caplog.at_level("WARNING"):
        page = Path(write_report(str(out))).read_text()
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("batchvoc.report")]
    assert page.count('alt="input and output mel of') == 5 and "Its audio file cannot be read" in page
    assert f"{gone['id']}: mel error" in page


def test_input_mels_reads_every_manifest_form_the_job_takes(tmp_path):
    rows = mel_rows(4, 80, frames=[5, 7, 6, 9])
    expected = {r["id"]: r["mel"].reshape(80, -1) for r in rows}
    write_manifest(tmp_path / "flat" / "m.parquet", rows)  # flat + n_frames
    nested_manifest(tmp_path / "nested" / "m.parquet", rows)  # nested lists, no n_frames
    fixed = pa.array([r["mel"].reshape(80, -1).tolist() for r in rows[:1]], pa.list_(pa.list_(pa.float64(), 5)))
    (tmp_path / "fixed").mkdir()
    pq.write_table(pa.table({"id": [rows[0]["id"]], "mel": fixed}), tmp_path / "fixed" / "m.parquet")
    (tmp_path / "npy" / "mels").mkdir(parents=True)
    for r in rows:  # mel_path .npy, relative to the manifest's folder, some with a leading size-1 axis
        np.save(tmp_path / "npy" / "mels" / f"{r['id']}.npy", r["mel"].reshape(1, 80, -1).astype(np.float16))
    write_manifest(tmp_path / "npy" / "m.parquet", [{"id": r["id"], "mel_path": f"mels/{r['id']}.npy"} for r in rows])
    for form in ("flat", "nested", "fixed", "npy"):
        mels = jobdata.input_mels(str(tmp_path / form), list(expected), 80)
        assert mels and set(mels) <= set(expected), form
        for key, mel in mels.items():
            assert mel.dtype == np.float32 and mel.shape == expected[key].shape, form
            np.testing.assert_allclose(mel, expected[key], atol=1e-2 if form == "npy" else 0)
    assert len(jobdata.input_mels(str(tmp_path / "nested"), list(expected), 80)) == 4
    # the job's input.mel_scale: the picture shows the natural-log mel the job vocoded (log10 read clamps at ln(clip))
    ln = jobdata.input_mels(str(tmp_path / "flat"), [rows[0]["id"]], MelChecks(80, scale="log10", mode="off"))
    want = np.maximum(expected[rows[0]["id"]] * np.log(10), np.log(1e-5))
    np.testing.assert_allclose(ln[rows[0]["id"]], want, rtol=1e-5)


def test_input_mels_pass_over_an_empty_part_without_a_warning(tmp_path, caplog):
    """An empty Parquet part (0 rows, a bare id column) beside the rows: the job skips it, so the report does too."""
    rows = mel_rows(2, 80, frames=[5, 7])
    write_manifest(tmp_path / "in" / "m.parquet", rows)
    pq.write_table(pa.table({"id": pa.array([], pa.string())}), tmp_path / "in" / "empty.parquet")
    with caplog.at_level("WARNING"):
        mels = jobdata.input_mels(str(tmp_path / "in"), [r["id"] for r in rows], 80)
    assert sorted(mels) == sorted(r["id"] for r in rows)
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("batchvoc.report")]


def test_speeds_after_a_retry_failed_rerun_are_over_the_audio_vocoded(tmp_path, caplog):
    """A rerun with output.retry_failed=true that reused rows' audio: every speed is over the audio vocoded, reused
    audio is named as reused (a fully reused shard has no speed, not 0.0x), and no unit is said twice."""
    from batchvoc.__main__ import log_closing
    from batchvoc.runner.driver import JobReport
    from batchvoc.stats import JobSummary, RunSummary

    out = tmp_path / "out"
    (out / "stats").mkdir(parents=True)
    (out / "manifest").mkdir()
    run = RunSummary(shards=2, rows_ok=5, rows_vocoded=1, rows_reused=4, audio_seconds=10.0, audio_seconds_vocoded=2.0,
                     wall_seconds=5.0, x_realtime=0.4)  # fmt: skip
    summary = JobSummary(rows_ok=5, audio_seconds=10.0, wall_seconds=5.0, x_realtime=0.4, actors=1, shards=2,
                         this_run=run, started_at=1000.0, backend="eager", precision="fp32",
                         config={"model": {"preset": "hifigan_v1_universal"}})  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary.to_json()))
    shards = [("a.r0-2", 2, 2, 4.0, 0.0, 1001.0, 0.5), ("b.r0-3", 3, 2, 6.0, 2.0, 1001.5, 1.0)]
    for shard, rows, reused, audio, vocoded, started, wall in shards:
        stats = dict(shard=shard, rows=rows, rows_ok=rows, rows_vocoded=rows - reused, rows_reused=reused,
                     audio_seconds=audio, audio_seconds_vocoded=vocoded, wall_s=wall, x_realtime=vocoded / wall,
                     started_at=started, actor="actor-0", device="cpu", backend="eager", precision="fp32")  # fmt: skip
        (out / "stats" / f"{shard}.json").write_text(json.dumps(stats))
        ids = [f"{shard}-{k}" for k in range(rows)]
        table = {"id": ids, "path": [f"audio/{key}.wav" for key in ids], "status": ["ok"] * rows,
                 "error": pa.nulls(rows, pa.string()), "duration_s": [audio / rows] * rows}  # fmt: skip
        pq.write_table(pa.table(table), out / "manifest" / f"{shard}.parquet")
    with caplog.at_level("WARNING", "batchvoc.report"):
        write_report(str(out))
    assert not caplog.records, caplog.text
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", (out / "report.html").read_text())))
    assert "0.4x real time (audio vocoded this run)" in text
    assert "2.0 s of audio vocoded (8.0 s more reused from an earlier run's files)" in text
    assert "1.3x real time over the audio vocoded" in text  # 2 s vocoded from 1001.0 to 1002.5, not 10 s
    assert "4 rows' audio was reused from an earlier run's files in the shards this run redid" in text
    assert "0.0x" not in text and "reused" in text.split("Start-up and actors")[1]  # the actor's and the shards'
    assert not re.search(r"\bx x\b|\bx\s*x real time|(\d)x x\b", text), text
    caplog.set_level("INFO", "batchvoc")
    log_closing(JobReport(summary), str(out))
    assert "vocoded this run, 4 rows reused), 0.4x real time" in caplog.text
    caplog.clear()
    nothing = RunSummary(shards=1, rows_ok=2, rows_reused=2, audio_seconds=4.0, wall_seconds=1.0)
    log_closing(JobReport(JobSummary(rows_ok=2, shards=1, this_run=nothing)), str(out))
    assert "no audio vocoded (reused)" in caplog.text and "0.0x" not in caplog.text


def test_a_rerun_with_nothing_to_do_says_whose_figures_it_shows(tmp_path):
    """A fresh user's reading: a rerun that found its one shard done showed "0.9x real time (audio vocoded this
    run)" beside "1 of 1 shards were done by an earlier run", and "1 actors". The figures are those of the last
    run that vocoded (stats.JobSummary keeps them): the page says so, in the singular where it is one."""
    from batchvoc.stats import JobSummary, RunSummary

    out = tmp_path / "out"
    out.mkdir()
    summary = JobSummary(rows_ok=3, audio_seconds=4.0, wall_seconds=4.4, x_realtime=0.9, actors=1, shards=1,
                         shards_skipped=1, this_run=RunSummary(), backend="eager", precision="fp32",
                         config={"model": {"preset": "hifigan_v1_universal"}})  # fmt: skip
    write_report(str(out), summary)
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", (out / "report.html").read_text())))
    assert "0.9x real time (the run that vocoded it)" in text and "vocoded this run" not in text
    assert "This run had nothing to do: its 1 shard was done by an earlier run; the wall time, speed" in text
    assert " 1 actor " in text and "1 actors" not in text and "1 shards" not in text
    two = JobSummary(rows_ok=3, shards=4, shards_skipped=3, actors=2, x_realtime=0.9, this_run=RunSummary(shards=1))
    write_report(str(out), two)  # a resumed run that did work: its own speed, the shards before it counted
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", (out / "report.html").read_text())))
    assert "3 of 4 shards done by an earlier run" in text and "0.9x real time (audio vocoded this run)" in text
    assert " 2 actors " in text and "nothing to do" not in text


def test_reasons_of_one_kind_count_together():
    from batchvoc.runner.failures import reason_kind as kind

    assert kind("n_mels is 100, the model takes 80 mel bands") == kind("n_mels is 128, the model takes 80 mel bands")
    assert kind("id '../a' leaves the output folder ('..')") == kind("id '../b/c' leaves the output folder ('..')")
    assert kind("mel has 3 NaN or Inf values of 1.5e3") == "mel has N NaN or Inf values of N"
    assert kind("mel is null") != kind("mel_path 'x.npy' does not exist")
    assert kind("id is null (row 4 of /d/a.parquet)") == kind("id is null (row 0 of /d/b.parquet)")
    control = "id {} holds a control character ({}): ids name audio files, whose names hold none"
    assert kind(control.format("'a\\tb'", "U+0009")) == kind(control.format("'c'", "U+202E"))


def test_the_failure_table_counts_by_kind_as_the_console_does_and_says_when_the_rows_numbers_differ():
    """The report grouped failures by a twin of the console's tally, and its table showed the first row's reason
    alone: "mel is scaled by 0.35" for rows scaled by 0.35 and 0.50, as if one fix held for both. It reads the
    console's tally now (runner/failures.py) and words that as the console does."""
    from batchvoc.report.render import _failures
    from batchvoc.stats import JobSummary

    reasons = ["mel is scaled by 0.35 (Tacotron's [-4, 4])"] * 2 + ["mel is scaled by 0.50 (Tacotron's [-4, 4])"]
    reasons += ["mel holds 480 values, not 80 x 7"] * 6 + ["mel_error 1.2 > 0.8"]
    statuses = ["error"] * 9 + ["suspect"]
    rows = pa.table({"id": [f"u{i}" for i in range(9)] + [None, "ok1"], "status": statuses + ["ok"],
                     "error": reasons + [None], "shard": ["s"] * 11})  # fmt: skip
    page = _failures(jobdata.JobData("out", JobSummary(), [], rows))
    cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", page)]
    assert cells[:6] == [
        "6", "mel holds 480 values, not 80 x 7", "u3, u4, u5, u6, u7",
        "3", "mel is scaled by 0.35 (Tacotron's [-4, 4]) (the numbers of id u0; the other rows' differ: see the "
             "`error` column)", "u0, u1, u2",
    ], cells  # fmt: skip
    assert cells[6:] == ["1", "mel_error 1.2 > 0.8", "null"], cells  # a suspect row; a null id reads `null`
    assert "Failed rows (not written): 9" in page
    assert "Suspect rows (written, their mel or its audio in doubt): 1" in page


def test_the_report_command_says_a_store_it_cannot_reach_in_one_line(tmp_path):
    """`python -m batchvoc.report s3://...` without credentials ended in botocore's NoCredentialsError traceback
    (no OSError, so not caught): now one line naming what to check, exit code 1, as a job says it."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL="http://127.0.0.1:9",
               AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "batchvoc.report", "s3://bucket/job"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("s3://bucket/job: cannot render the report: no usable credentials") and "AWS_" in line


def test_an_actors_two_shards_at_once_draw_a_curve_forward_in_time_and_busy_counts_their_overlap_once():
    """An actor runs two shards at once (their walls overlap): the audio-done curve went back in time (each shard's
    start after the one before's end) and `busy` summed the walls (108.7 s of busy time in a 64.8 s job)."""
    from batchvoc.report.plots import cumulative_audio
    from batchvoc.report.render import busy_seconds

    spans = [dict(start=1.0, end=5.0, audio=40.0), dict(start=2.0, end=4.0, audio=10.0), dict(start=6.0, end=8.0,
                                                                                              audio=20.0)]  # fmt: skip
    t, done = cumulative_audio(spans)
    assert list(t) == [0.0, 1.0, 2.0, 4.0, 5.0, 6.0, 8.0]
    assert np.all(np.diff(done) >= 0) and done[0] == 0.0 and done[-1] == 70.0
    assert done[3] == 40.0 * 3 / 4 + 10.0  # the first shard three quarters done, the second done
    stats = [dict(started_at=100.0 + s["start"], wall_s=s["end"] - s["start"]) for s in spans]
    assert busy_seconds(stats) == 6.0  # [1, 5] and [6, 8]: the second shard's [2, 4] lies inside the first's
    assert busy_seconds([dict(wall_s=2.0), dict(wall_s=3.0)]) == 5.0  # no start times: the walls summed
