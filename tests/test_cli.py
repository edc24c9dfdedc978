"""`python -m batchvoc` as users run it: real processes, a real local Ray each, real files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from tests.jobs import closing_line, read_summary
from tests.raycluster import descendants, free_ports, reap
from tests.runner.test_driver import three_files

ROOT = Path(__file__).resolve().parent.parent


def batchvoc(*overrides: str, wait: bool = True, **kw):
    cmd = [sys.executable, "-m", "batchvoc", *overrides]
    # the session's own Ray token and temp dir (conftest), unless kw["env"] says otherwise
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **kw.get("env", {})}
    if not wait:  # a user's terminal, where Ctrl-C interrupts: not the SIGINT a suite run in the background ignores
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=_default_sigint)  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=kw.get("timeout", 300))


def _default_sigint() -> None:
    """In the child before exec: SIGINT's default action, so Python turns it into KeyboardInterrupt (a process
    started in the background by a shell inherits SIGINT ignored, and Python then leaves it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_v4_without_checkpoint_says_which_key_and_where(tmp_path):
    """Refused by the quick checks, before Ray, torch or Hydra's log folder (the job used to start Ray, import
    torch and leave output.dir/logs/<time>/ before the model loader said it)."""
    mel = tmp_path / "in"
    three_files(mel, rows=3)
    result = batchvoc("job=v4_fp16", f"input.manifest={mel}", f"output.dir={tmp_path / 'out'}")
    assert result.returncode == 1
    assert "model.checkpoint" in result.stderr and "huggingface.co/lj1995/GPT-SoVITS" in result.stderr
    assert "Ray starting" not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()


def test_v4_with_pretrained_says_it_ships_none_before_hydra(tmp_path):
    """`pretrained` for a preset that ships no weights: refused by the quick checks, leaving output.dir as it was
    (the model loader said it after Hydra had made output.dir/logs/<time>/, with Ray started)."""
    mel = tmp_path / "in"
    three_files(mel, rows=3)
    (tmp_path / "out").mkdir()
    result = batchvoc("job=v4_fp16", "model.checkpoint=pretrained", f"input.manifest={mel}",
                      f"output.dir={tmp_path / 'out'}")  # fmt: skip
    assert result.returncode == 1
    assert "model.checkpoint: `pretrained` is only available for hifigan_v1_universal" in result.stderr
    assert "Ray starting" not in result.stdout + result.stderr
    assert list((tmp_path / "out").iterdir()) == []


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes (folders as b"/"), by path below it."""
    return {str(p.relative_to(folder)): b"/" if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def test_refusals_after_hydra_leave_output_dir_as_they_found_it(tmp_path):
    """A manifest whose files hold 0 rows (found as the driver plans) and a cluster.address nothing answers at
    (found once the job waits for Ray, after it recorded job.json): refused after Hydra made logs/<time>/, they left
    it behind, and the address's job.json. Now output.dir is as they found it: an earlier run's log folder and
    job.json kept as they were, a folder that was not there not left, nor a sweep's (Hydra's multirun.yaml)."""
    import pyarrow as pa

    empty, rows = tmp_path / "empty", tmp_path / "rows"
    empty.mkdir()
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "mel": pa.array([], pa.list_(pa.float32())),
                             "n_frames": pa.array([], pa.int32())}), empty / "a.parquet")  # fmt: skip
    three_files(rows, rows=3)
    out = tmp_path / "out"
    (out / "logs" / "2026-01-01_00-00-00").mkdir(parents=True)
    (out / "logs" / "2026-01-01_00-00-00" / "batchvoc.log").write_text("an earlier run's log\n")
    (out / "job.json").write_text('{"an earlier": "record"}\n')
    before = _tree(out)
    (port,) = free_ports(1)  # nothing listens there: connection refused
    job = ("job=hifigan_v1", "model.checkpoint=pretrained")
    for given, said in (
        ((f"input.manifest={empty}",), "input.manifest: no rows to vocode"),
        ((f"input.manifest={rows}", f"cluster.address=127.0.0.1:{port}"), "cluster.address: nothing answers"),
    ):
        for where in (out, tmp_path / "new"):
            result = batchvoc(*job, *given, f"output.dir={where}")
            assert result.returncode == 1 and said in result.stderr, result.stdout[-3000:] + result.stderr[-3000:]
            assert _tree(out) == before and not (tmp_path / "new").exists(), list(_tree(out))
    sweep = batchvoc("-m", *job, f"input.manifest={rows}", f"output.dir={tmp_path / 'new'}",
                     f"cluster.address=127.0.0.1:{port},127.0.0.1:{free_ports(1)[0]}")  # fmt: skip
    assert sweep.returncode == 1 and sweep.stderr.count("cluster.address: nothing answers") == 2, sweep.stderr
    assert not (tmp_path / "new").exists(), list(_tree(tmp_path / "new"))


def test_an_unreadable_checkpoint_is_named_before_the_job_waits_for_ray(tmp_path):
    three_files(tmp_path / "in", rows=3)
    (tmp_path / "g.pth").write_text("a text file, not weights")
    result = batchvoc("job=hifigan_v1", f"model.checkpoint={tmp_path / 'g.pth'}", f"input.manifest={tmp_path / 'in'}",
                      f"output.dir={tmp_path / 'out'}")  # fmt: skip
    assert result.returncode == 1
    (said,) = [line for line in result.stderr.splitlines() if line.startswith("batchvoc: cannot run:")]
    assert "model.checkpoint" in said and "not a file torch.save writes" in said
    # the plan's checks came first: the job never waited for its Ray (begun early, then shut down quietly)
    console = result.stdout + result.stderr
    assert "Ray started" not in console and "Ray cluster:" not in console and "Started a local Ray" not in console
    assert console.count("cannot run") == 1  # on stderr, which says it all: refused, the job leaves no log folder
    assert not (tmp_path / "out").exists()


SMALL_AOTI = ("job=hifigan_v1", "model.checkpoint=random", "+model.hparams.upsample_initial_channel=32",
              "engine.backend=aoti")  # fmt: skip


def test_an_engine_cache_dir_that_is_a_file_is_named_before_ray_starts(tmp_path):
    three_files(tmp_path / "in", rows=3)
    (tmp_path / "cache").write_text("a file where the engines would go")
    result = batchvoc(*SMALL_AOTI, f"engine.cache_dir={tmp_path / 'cache'}", f"input.manifest={tmp_path / 'in'}",
                      f"output.dir={tmp_path / 'out'}")  # fmt: skip
    assert result.returncode == 1
    (said,) = [line for line in result.stderr.splitlines() if line.startswith("batchvoc: cannot run:")]
    assert said.startswith("batchvoc: cannot run: engine.cache_dir: ") and "is a file, not a folder" in said
    assert "Traceback" not in result.stdout + result.stderr and "Ray started" not in result.stdout


def test_actors_that_cannot_start_stop_the_job_in_one_line_with_the_cause_logged(tmp_path):
    three_files(tmp_path / "in", rows=3)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "aoti").write_text("a file where the aoti packages would go")  # fails the build, not a check
    result = batchvoc(*SMALL_AOTI, f"engine.cache_dir={tmp_path / 'cache'}", f"input.manifest={tmp_path / 'in'}",
                      f"output.dir={tmp_path / 'out'}")  # fmt: skip
    assert result.returncode == 1
    (said,) = [line for line in result.stderr.splitlines() if line.startswith("batchvoc: cannot run:")]
    assert said.startswith("batchvoc: cannot run: no actor could start: FileExistsError: ") and "aoti" in said
    assert "the first actor's error:" in result.stdout and "Error executing job" not in result.stderr
    log = next((tmp_path / "out" / "logs").rglob("batchvoc.log")).read_text()
    assert "the first actor's error:" in log and "FileExistsError" in log


def test_tensorrt_without_the_extra_names_it(tmp_path):
    pytest.importorskip("torch")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    three_files(tmp_path / "in", rows=3)
    result = batchvoc("job=hifigan_v1", f"input.manifest={tmp_path / 'in'}", f"output.dir={tmp_path / 'out'}",
                      "engine.backend=tensorrt")  # fmt: skip
    assert result.returncode == 1 and "engine.backend" in result.stderr and "CUDA GPU" in result.stderr
    assert ("batchvoc[tensorrt]" if Path("/dev/nvidiactl").exists() else "has none") in result.stderr


def test_demo_makes_real_audio(tmp_path):
    out = tmp_path / "demo"
    result = batchvoc("job=demo", f"output.dir={out}", "demo.utterances=3", "demo.seconds=1.0")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = read_summary(out)
    assert summary.rows_ok == 3 and summary.rows_failed == 0
    wavs = sorted((out / "audio").rglob("*.wav"))
    assert len(wavs) == 3
    for path in wavs:
        audio, rate = sf.read(path)
        assert rate == 22050 and audio.size > 0.7 * rate
        assert np.sqrt(np.mean(audio**2)) > 0.01  # not silent
    assert f"batchvoc: {closing_line(summary)}; " in result.stdout  # clipped rows counted too
    assert "DeprecationWarning" not in result.stdout + result.stderr  # e.g. from a deprecated Ray call in an actor
    console = result.stdout + result.stderr
    # an actor's info lines reach the console at INFO (they were dropped: only its warnings came through)
    assert re.search(r"\[batchvoc\.worker\]\[INFO\] - \(ActorWorker pid=\d+\) engine ready: backend=eager", console)
    # the timeline's lines never go back in time (an actor's process start printed after `actors created`)
    times = [float(t) for t in re.findall(r"\] - ([\d.]+) s after the process started: ", console)]
    assert len(times) >= 10 and times == sorted(times), console


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupted_job_finishes_on_rerun_without_duplicates(tmp_path, how):
    """Ctrl-C, SIGTERM (kill, timeout, a batch scheduler: handled as a Ctrl-C, exit code 143, no Ray crash report)
    or SIGKILL mid-job; the same command finishes what is missing, nothing twice."""
    rows = three_files(tmp_path / "in", rows=200, seed=1)
    out = tmp_path / "out"
    args = ("job=hifigan_v1", f"input.manifest={tmp_path / 'in'}", f"output.dir={out}", "model.checkpoint=random",
            "+model.hparams.upsample_initial_channel=128", "engine.backend=eager", "cluster.cpu_actors=2",
            "input.shard_seconds=0.5", "engine.batch=2", "engine.window=16")  # fmt: skip
    proc = batchvoc(*args, wait=False)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((out / "manifest").glob("*.parquet"))) < 3:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    done_then = len(list((out / "manifest").glob("*.parquet")))
    started = descendants(proc.pid)  # the local Ray this driver started: ours to clean up, by pid, if it stays
    proc.send_signal(getattr(signal, how))
    proc.wait(timeout=60)
    assert proc.returncode != 0
    console = proc.stdout.read()
    time.sleep(2)  # let a killed driver's workers go
    reap(started)
    if how != "SIGKILL":  # the console says how far it got and what a rerun does
        said = re.search(r"interrupted with (\d+) of (\d+) shards done; the same command runs the other (\d+)",
                         console)  # fmt: skip
        assert said, f"no count of the shards done: {console[-3000:]}"
        stopped = "interrupted (Ctrl-C)" if how == "SIGINT" else "terminated (SIGTERM)"
        assert proc.returncode == (130 if how == "SIGINT" else 143), console[-3000:]
        assert f"batchvoc: {stopped.split(' (')[0]}" in console and "SIGTERM received" not in console  # Ray's dump
        _interrupted_summary_and_report(out, [int(n) for n in said.groups()], len(rows), stopped)
    finished = {p: p.stat().st_mtime_ns for p in (out / "audio").rglob("*.wav")}
    total_shards = json.loads(json.dumps(len(list((out / "manifest").glob("*.parquet")))))
    assert 3 <= done_then <= total_shards

    result = batchvoc(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    table = [r for p in sorted((out / "manifest").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert sorted(r["id"] for r in table) == sorted(r["id"] for r in rows)  # every id exactly once
    assert all(r["status"] == "ok" for r in table)
    on_disk = {p.relative_to(out).as_posix() for p in (out / "audio").rglob("*.wav")}
    assert on_disk == {r["path"] for r in table}
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]
    rewritten = [p for p, mtime in finished.items() if p.stat().st_mtime_ns != mtime]
    assert not rewritten, rewritten[:3]
    for r in table[::20]:
        assert sf.info(out / r["path"]).frames == r["n_samples"]
    summary = read_summary(out)
    assert summary.rows_ok == 200 and summary.shards_skipped >= 3


def _interrupted_summary_and_report(out: Path, said: list[int], rows: int, stopped: str) -> None:
    """A fresh user's report: after Ctrl-C there was no summary.json and no report.html, so the "not run" counts
    never showed for the commonest early end. Now they are written as an early stop's are: what was done, the
    rows of the shards not done as not run, and why it stopped (interrupted)."""
    import html

    done, shards, left = said
    s = read_summary(out)
    written = [r for p in sorted((out / "manifest").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert (s.shards, len(s.shards_not_written), done + left) == (shards, left, shards)
    assert len(list((out / "manifest").glob("*.parquet"))) == done  # as the summary says
    assert s.stopped_early == stopped and s.exit_code == 1
    assert (s.rows_ok, s.rows_failed, s.rows_not_run) == (len(written), 0, rows - len(written)) and s.rows_not_run
    assert (s.this_run.shards, s.this_run.rows_not_run) == (shards, s.rows_not_run)
    assert s.timeline["interrupted"] > 0 and s.actors >= 1  # the actors that ran, though dealing never returned
    page = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", (out / "report.html").read_text())))
    assert f"{s.rows_not_run} rows not run" in page and f"The job stopped early: {stopped}." in page
    assert f"{s.rows_not_run} rows were not run ({left} shards not finished)" in page


def test_ctrl_c_at_the_jobs_end_still_writes_the_complete_jobs_summary(tmp_path):
    """Ctrl-C after the last shard, while the job's end writes its summary and report and shuts Ray down, was
    raised into those writes: no summary.json, for a job whose every shard was done. Now the end finishes (the
    complete job's summary, not stopped early) and the process exits 130. Synced on the job's 'shards done' line,
    said once the end holds Ctrl-C back."""
    rows = three_files(tmp_path / "in", rows=6)
    out = tmp_path / "out"
    proc = batchvoc("job=hifigan_v1", "model.checkpoint=random", "+model.hparams.upsample_initial_channel=32",
                    "engine.backend=eager", f"input.manifest={tmp_path / 'in'}", f"output.dir={out}",
                    wait=False)  # fmt: skip
    seen, started = [], []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.rstrip().endswith("s after the process started: shards done"):
                started = descendants(proc.pid)  # the local Ray this driver started: ours to clean up, by pid
                os.kill(proc.pid, signal.SIGINT)  # the job's own pid, as a terminal's Ctrl-C
                break
        rest = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            started += descendants(proc.pid)
            proc.kill()
        reap(started)
    console = "".join(seen) + rest
    assert started, console[-3000:]  # the line was seen, and the signal sent
    assert proc.returncode == 130, console[-3000:]
    assert "interrupted at the job's end: summary.json and report.html are being written" in console
    assert "interrupted again" not in console
    summary = read_summary(out)
    assert summary.stopped_early is None and summary.shards_not_written == [] and summary.exit_code == 0
    assert (summary.rows_ok, summary.rows_not_run, summary.this_run.shards) == (len(rows), 0, summary.shards)
    assert f"interrupted with every one of its {summary.shards} shard" in console
    assert "batchvoc: interrupted; the job was complete" in console and "same command again" not in console
    assert f"batchvoc: {len(rows)} rows ok, 0 suspect, 0 failed" in console  # its closing line all the same
    assert "report written" in summary.timeline and (out / "report.html").is_file()


def test_v3_bf16_runs_an_nvidia_checkpoint_folder_end_to_end(tmp_path):
    """job=v3_bf16 with a small random BigVGAN v2 saved the way NVIDIA publishes it (config.json + generator)."""
    import torch

    from batchvoc.checkpoint_config import READERS
    from batchvoc.models.bigvgan import BigVGAN
    from tests.checkpoints import write_nvidia_folder
    from tests.conftest import mel_rows, write_manifest
    from tests.models.test_bigvgan import CONFIG_24K

    config = dict(CONFIG_24K, upsample_initial_channel=64)
    torch.manual_seed(3)
    write_nvidia_folder(BigVGAN.from_hparams(**READERS["bigvgan"](config)), config, tmp_path / "ckpt")
    write_manifest(tmp_path / "in" / "m.parquet", mel_rows(3, 100, frames=[12, 30, 7]))
    out = tmp_path / "out"
    result = batchvoc("job=v3_bf16", f"model.checkpoint={tmp_path / 'ckpt'}", f"input.manifest={tmp_path / 'in'}",
                      f"output.dir={out}", "engine.backend=eager", "engine.batch=2",
                      "check.max_mel_error=null")  # fmt: skip  # random weights: their audio matches no mel
    assert result.returncode == 0, result.stdout + result.stderr
    table = [r for p in (out / "manifest").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert sorted(r["n_samples"] for r in table) == [7 * 256, 12 * 256, 30 * 256]
    assert {r["sample_rate"] for r in table} == {24000}
    summary = read_summary(out)
    assert summary.precision == "bf16" and summary.rows_ok == 3


SECRETS = ("AKIAEXAMPLEKEYID", "s3cr3t/VALUE+x", "SESSIONtok")  # io.storage_options' key, secret, session token
STORE_KEYS = ("io.storage_options={key: AKIAEXAMPLEKEYID, secret: s3cr3t/VALUE+x, anon: false, "
              "client_kwargs: {aws_session_token: SESSIONtok, region_name: eu-west-1}}")  # fmt: skip


def test_multirun_checks_every_job_first_then_runs_each_into_its_own_folder(tmp_path):
    """-m with a bad third subtype stops before any job runs, naming the key and the job (not after the first two
    jobs' hours); PCM_16 and PCM_24 then run each in output.dir/N. Store keys given in io.storage_options are in
    no file the sweep leaves (Hydra's .hydra/*.yaml and multirun.yaml held them in plain text) nor on its console."""
    three_files(tmp_path / "in", rows=6)
    out = tmp_path / "out"
    common = ("-m", "job=hifigan_v1", f"input.manifest={tmp_path / 'in'}", f"output.dir={out}",
              "model.checkpoint=random", "+model.hparams.upsample_initial_channel=32",
              "engine.backend=eager", STORE_KEYS)  # fmt: skip
    refused = batchvoc(*common, "output.format=flac", "output.subtype=PCM_16,PCM_24,FLOAT", timeout=120)
    assert refused.returncode == 1, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert "output.subtype: flac takes PCM_16, PCM_24, not 'FLOAT' (job 2 of the sweep)" in refused.stderr
    assert not list(out.rglob("summary.json")) and not list(out.rglob("*.flac"))
    result = batchvoc(*common, "output.subtype=PCM_16,PCM_24", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for num, subtype in ((0, "PCM_16"), (1, "PCM_24")):
        summary = read_summary(out / str(num))
        assert summary.rows_ok == 6 and summary.config["output"]["subtype"] == subtype
        files = list((out / str(num)).rglob("*.wav"))
        assert len(files) == 6 and {sf.info(p).subtype for p in files} == {subtype}
        log = next((out / str(num) / "logs").rglob("batchvoc.log")).read_text()
        assert f"batchvoc: {closing_line(summary)}; " in log  # the summary line reaches each job's log file
    assert not (out / "2").exists()
    console = result.stdout + result.stderr  # redirected: no colour codes, no token banner
    assert "\x1b[" not in console and "Token authentication is enabled" not in console
    # the sweep ends with a line per job: its swept value, how it ended, its folder (a user's sweep of many jobs
    # had one refused among them, its line far above, only the exit code saying so)
    assert result.stderr.rstrip().endswith(
        f"batchvoc: sweep of 2 jobs, exit code 0:\n"
        f"  job 0 (output.subtype=PCM_16): every row ok; {out}/0\n"
        f"  job 1 (output.subtype=PCM_24): every row ok; {out}/1"
    ), result.stderr
    records = [p for p in out.rglob("*") if p.is_file() and p.suffix in (".yaml", ".json", ".log", ".html")]
    assert {"multirun.yaml", "config.yaml", "overrides.yaml", "hydra.yaml"} <= {p.name for p in records}
    for path in records:
        assert not [s for s in SECRETS if s in path.read_text()], path
    assert "eu-west-1" in (out / "multirun.yaml").read_text() and "<redacted>" in (out / "multirun.yaml").read_text()
    assert not [s for s in SECRETS if s in console]
    # run again, every shard done: each job's line says it ran nothing (it said "every row ok", as if vocoded)
    again = batchvoc(*common, "output.subtype=PCM_16,PCM_24", timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stderr.rstrip().endswith(
        f"batchvoc: sweep of 2 jobs, exit code 0:\n"
        f"  job 0 (output.subtype=PCM_16): nothing to do (all 3 shards done before); every row ok; {out}/0\n"
        f"  job 1 (output.subtype=PCM_24): nothing to do (all 3 shards done before); every row ok; {out}/1"
    ), again.stderr
    swapped = batchvoc(*common, "output.subtype=PCM_24,PCM_16", timeout=300)  # other jobs in those folders
    assert swapped.returncode == 1, swapped.stdout[-3000:] + swapped.stderr[-3000:]
    assert "What differs: output.subtype: PCM_16 -> PCM_24" in swapped.stderr
    assert (
        f"  job 0 (output.subtype=PCM_24): refused before any work (its 'cannot run' line above); {out}/0\n"
        f"  job 1 (output.subtype=PCM_16): refused before any work"
    ) in swapped.stderr, swapped.stderr


def test_a_sweep_flag_after_the_overrides_is_taken_as_it_was_checked(tmp_path):
    """`job=hifigan_v1 -m key=a,b` passed batchvoc's checks (which read -m anywhere), then Hydra's parser refused
    the overrides after -m with its usage text (exit 2), leaving the checked output.dir empty."""
    three_files(tmp_path / "in", rows=2)
    out = tmp_path / "out"
    result = batchvoc("job=hifigan_v1", "-m", f"input.manifest={tmp_path / 'in'}", f"output.dir={out}",
                      "model.checkpoint=random", "+model.hparams.upsample_initial_channel=32", "engine.backend=eager",
                      "output.subtype=PCM_16,PCM_24", timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "unrecognized arguments" not in result.stderr
    for num, subtype in ((0, "PCM_16"), (1, "PCM_24")):
        assert read_summary(out / str(num)).config["output"]["subtype"] == subtype


@pytest.mark.parametrize(
    ("sweep", "said"),
    [
        (["-m", "engine.batch=0,-1"], "engine.batch: must be at least 1, not 0 (job 0 of the sweep)"),
        (["-m", "model.checkpoint={tmp}/no1.pth,{tmp}/no2.pth"], "no1.pth' does not exist (job 0 of the sweep)"),
        # a swept value that composing the job refuses (its type, a name) names the job too, as the docs say
        (["-m", "engine.batch=1,eight"], "engine.batch: wrong type: 'eight' is not an integer (job 1 of the sweep)"),
        (["-m", "engine.backend=eager,turbo"], "'turbo' is not one of auto, tensorrt, aoti, inductor, eager (job 1 of"),
        (["engine.batch=0"], "engine.batch: must be at least 1, not 0"),  # one job: the same
    ],
)
def test_a_command_refused_before_its_jobs_run_leaves_no_output_dir(sweep, said, tmp_path):
    """A sweep whose jobs its settings refuse made output.dir (and its missing parents) to check it could write
    there, and left them empty; an output.dir that was there stays, with what it held."""
    three_files(tmp_path / "in", rows=2)
    overrides = [o.format(tmp=tmp_path) for o in sweep]
    out = tmp_path / "new" / "out"
    refused = batchvoc(*overrides, "job=hifigan_v1", f"input.manifest={tmp_path / 'in'}", f"output.dir={out}",
                       timeout=120)  # fmt: skip
    assert refused.returncode == 1 and "batchvoc: cannot run: " in refused.stderr and said in refused.stderr
    assert not (tmp_path / "new").exists(), list((tmp_path / "new").rglob("*"))
    (tmp_path / "had").mkdir()
    (tmp_path / "had" / "notes.txt").write_text("mine")
    refused = batchvoc(*overrides, "job=hifigan_v1", f"input.manifest={tmp_path / 'in'}",
                       f"output.dir={tmp_path / 'had'}", timeout=120)  # fmt: skip
    assert refused.returncode == 1 and said in refused.stderr
    assert [p.name for p in (tmp_path / "had").iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_the_wheel_installs_and_runs_the_demo_outside_the_checkout(tmp_path):
    """pip wheel + pip install into a fresh venv (this venv's packages for the dependencies), then job=demo."""
    import site
    import venv

    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)  # fmt: skip
    venv.create(tmp_path / "venv", with_pip=False)
    py = tmp_path / "venv" / "bin" / "python"
    (purelib,) = {p for p in (tmp_path / "venv" / "lib").glob("python*/site-packages")}
    (purelib / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")  # after the venv's own packages
    (wheel,) = (tmp_path / "dist").glob("batchvoc-*.whl")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}  # not the checkout's
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300, env=env, cwd=tmp_path)  # fmt: skip
    where = subprocess.run([py, "-c", "import batchvoc; print(batchvoc.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert where.stdout.startswith(str(purelib)), where.stdout + where.stderr
    out = tmp_path / "demo"
    result = subprocess.run([py, "-m", "batchvoc", "job=demo", f"output.dir={out}", "demo.utterances=2",
                             "demo.seconds=1.0"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert read_summary(out).rows_ok == 2


def test_closing_lines_say_what_a_rerun_would_do(caplog):
    """Shards a job could not finish: run again to retry. Shards not run because the job stopped early (its first
    rows all failed alike): what was not run, that the same command runs exactly those once the cause is fixed in
    the input it reads (it said to fix it and rerun with output.retry_failed=true: a plain rerun runs them), that the
    rows that ran and failed need output.retry_failed=true, and that a fix in a setting or a manifest file is a new
    job. Failed rows: how to vocode them again, or, where output.retry_failed=true did, that their input is still
    bad."""
    from batchvoc.__main__ import log_closing
    from batchvoc.runner.driver import JobReport
    from batchvoc.stats import JobSummary

    caplog.set_level("INFO", logger="batchvoc")
    summary = JobSummary(rows_failed=16, rows_not_run=24, shards=3, shards_not_written=["b", "c"],
                         stopped_early="the first 16 rows all failed the same way, e.g. x")  # fmt: skip
    log_closing(JobReport(summary, ["b", "c"], summary.stopped_early), "/out")
    # the rows that ran and failed apart from those of the shards the stop left: not run, not failed
    assert "batchvoc: 0 rows ok, 0 suspect, 16 failed, 24 not run, 0 clipped; " in caplog.text, caplog.text
    said = ("batchvoc: stopped early: 2 shards (24 rows) not run. Once the cause above is fixed where the job reads "
            "it again (a mel_path row's .npy file, a worker's keys or environment), the same command runs exactly "
            "those; the 16 rows that ran and failed stay failed, unless output.retry_failed=true is added. A cause "
            "fixed in a setting "
            "(input.mel_scale among them), the checkpoint or a manifest file (its ids, inline mels) makes a new job: "
            "a new output.dir, or output.overwrite=true")  # fmt: skip
    assert said in caplog.text, caplog.text
    assert "fix the cause above first" not in caplog.text
    assert "run again to retry" not in caplog.text
    caplog.clear()
    log_closing(JobReport(JobSummary(shards=3), ["c"]), "/out")
    assert "shards that could not finish: c; run again to retry" in caplog.text
    caplog.clear()
    full = JobSummary(rows_ok=10, rows_not_run=5, shards=3, shards_not_written=["c"],
                      write_fault="cannot write to output.dir /out: no space left on the device")  # fmt: skip
    log_closing(JobReport(full, ["c"], "cannot write to output.dir /out: no space left"), "/out")
    assert "batchvoc: 10 rows ok, 0 suspect, 0 failed, 5 not run, 0 clipped; " in caplog.text, caplog.text
    said = "batchvoc: 5 rows not run (1 shard not written): cannot write to output.dir /out: no space left on the "
    assert f"{said}device; once output.dir can be written, the same command runs them" in caplog.text, caplog.text
    assert "fix the cause above" not in caplog.text and "retry_failed" not in caplog.text  # not the input's fault
    caplog.clear()
    log_closing(JobReport(JobSummary(shards=3, rows_ok=5, rows_failed=1)), "/out")  # rows failed: how to redo them
    assert "output.retry_failed=true vocodes them again" in caplog.text
    # a row refused as dB says `set input.mel_scale=db`: a new setting, which a rerun refuses (another job) unless
    # it goes to a new output.dir or overwrites: the hint said only that a changed manifest file is a new job
    assert "setting, input.mel_scale among them, is a new job" in caplog.text and "output.overwrite=true" in caplog.text
    caplog.clear()
    log_closing(JobReport(JobSummary(shards=3, rows_ok=5, rows_failed=2)), "/out", retry_failed=True)  # retried
    assert "2 rows failed again with output.retry_failed=true, for the reasons above" in caplog.text
    assert "a retry reads their mel files again" in caplog.text and "is a new job" in caplog.text
    assert "error column" in caplog.text and "vocodes them again" not in caplog.text


def test_a_lost_heads_closing_line_names_the_shards_that_may_still_finish_after_the_summary(caplog):
    """A job that lost its cluster's head wrote summary.json 16.7 s after the head was SIGKILLed, counting 0 of 6
    shards done; its actor on another node finished 2 of them 17.7 and 23.5 s after the kill (a real 2-node run),
    and the console said only that the same command runs the shards not run. Now it names those that were running,
    which may still finish after the summary (and summary.json lists them)."""
    from batchvoc.__main__ import log_closing
    from batchvoc.runner.cluster import HEAD_LOST
    from batchvoc.runner.driver import RUNNING_AT_LOSS, JobReport
    from batchvoc.stats import JobSummary

    caplog.set_level("INFO", logger="batchvoc")
    lost = f"{HEAD_LOST}: its GCS at 127.0.0.1:6379 has taken no connection for 15 s (connection refused)"
    shards = ["a", "b", "c", "d", "e", "f"]
    summary = JobSummary(rows_not_run=16, shards=6, shards_not_written=shards, stopped_early=lost,
                         extra={RUNNING_AT_LOSS: ["a", "b"]})  # fmt: skip
    log_closing(JobReport(summary, shards, lost), "/out")
    assert ("batchvoc: 6 shards (16 rows) not run: the same command runs exactly those once the cluster is back, or "
            "against a new head (cluster.address); 2 shards of them were running when the head was lost, and on a "
            "node that outlives the head they may still finish after this summary") in caplog.text, caplog.text
    assert "output.dir then holds more finished shards than summary.json counts" in caplog.text
    caplog.clear()
    summary.extra = {}  # none running (a one-node cluster's actors end with its head): nothing more said
    log_closing(JobReport(summary, shards, lost), "/out")
    assert "against a new head (cluster.address)\n" in caplog.text + "\n" and "outlives" not in caplog.text


def test_a_sweeps_closing_lines_say_what_each_job_ran():
    """A sweep run again said "every row ok" for jobs that ran nothing (every shard done before); it says so now,
    and how much a resumed job ran; a job run whole reads as before."""
    from batchvoc.__main__ import job_did, sweep_closing
    from batchvoc.runner.driver import JobReport
    from batchvoc.stats import JobSummary, RunSummary

    nothing = JobReport(JobSummary(rows_ok=4, shards=3, shards_skipped=3, this_run=RunSummary(shards=0)))
    resumed = JobReport(JobSummary(rows_ok=4, rows_failed=1, shards=3, shards_skipped=2, this_run=RunSummary(shards=1)))
    whole = JobReport(JobSummary(rows_ok=4, shards=3, this_run=RunSummary(shards=3)))
    did = [job_did(r) for r in (nothing, resumed, whole)]
    assert did == ["nothing to do (all 3 shards done before)", "1 of 3 shards run, 2 done before", ""]
    jobs = [([f"output.subtype={v}"], f"out/{n}") for n, v in enumerate(("PCM_16", "PCM_24", "FLOAT"))]
    assert sweep_closing(jobs, [0, 2, 0], [False] * 3, did).splitlines()[1:] == [
        "  job 0 (output.subtype=PCM_16): nothing to do (all 3 shards done before); every row ok; out/0",
        "  job 1 (output.subtype=PCM_24): rows failed or suspect (its summary line above); 1 of 3 shards run, 2 done "
        "before; out/1",
        "  job 2 (output.subtype=FLOAT): every row ok; out/2",
    ]


def test_closing_lines_count_one_in_the_singular(caplog):
    """A count of one takes the singular noun: the closing lines said `1 rows still failed`, `1 rows ok`, `1 shard(s)
    not run`, `on 1 actor(s)`, `all 1 shards were done before`."""
    from batchvoc.__main__ import log_closing
    from batchvoc.runner.driver import JobReport
    from batchvoc.runner.failures import console_lines
    from batchvoc.stats import JobSummary, RunSummary

    caplog.set_level("INFO", logger="batchvoc")
    one = JobSummary(rows_ok=1, rows_failed=1, shards=2, actors=1, backend="eager", precision="fp32",
                     this_run=RunSummary(shards=2))  # fmt: skip
    log_closing(JobReport(one), "/out", retry_failed=True)
    assert "batchvoc: 1 row ok, 0 suspect, 1 failed" in caplog.text and " on 1 actor (eager" in caplog.text
    assert "1 row failed again with output.retry_failed=true" in caplog.text
    caplog.clear()
    log_closing(JobReport(JobSummary(rows_failed=16, rows_not_run=1, shards=2, stopped_early="x"), ["b"], "x"), "/out")
    assert "stopped early: 1 shard (1 row) not run. Once the cause" in caplog.text
    assert "the 16 rows that ran and failed stay failed" in caplog.text
    assert ", 16 failed, 1 not run, 0 clipped" in caplog.text
    caplog.clear()
    log_closing(JobReport(JobSummary(rows_ok=1, shards=1, this_run=RunSummary())), "/out")
    assert "nothing to do: its 1 shard was done before (1 row ok, 0 suspect, 0 failed)" in caplog.text, caplog.text
    top = [{"rows": 1, "status": "error", "reason": "mel is null", "example_id": "a"}]
    assert console_lines(top, 1, 1, "/out/manifest/") == [
        "  1 row error: mel is null (e.g. id a)",
        "  … and 1 more reason (1 row): see the `error` column of the output manifest, /out/manifest/",
    ]
    assert console_lines([{**top[0], "rows": 2}], 2, 3)[1].startswith("  … and 2 more reasons (3 rows): ")
    assert "1 rows" not in caplog.text and "(s)" not in caplog.text


def _help_keys() -> dict[str, str]:
    """`python -m batchvoc --help`'s key lines, by key."""
    from batchvoc.cli import help_text

    text = help_text().split("\nkeys (", 1)[1].split("\n\n", 1)[0]
    return {line.split()[0]: line for line in text.splitlines()[1:]}


def _schema_types(node=None, prefix: str = "") -> dict[str, type]:
    """Every schema key's type (Optional[X] as X), nested dataclasses walked."""
    import dataclasses
    import typing

    from batchvoc.config import BatchvocConfig

    node = node or BatchvocConfig
    found = {}
    for name, kind in typing.get_type_hints(node).items():
        kind = next((k for k in typing.get_args(kind) if k is not type(None)), kind)
        if dataclasses.is_dataclass(kind) and not name == "demo":
            found.update(_schema_types(kind, f"{prefix}{name}."))
        else:
            found[f"{prefix}{name}"] = kind
    return found


def test_help_says_overwrite_deletes_this_jobs_outputs_too():
    """output.overwrite=true deletes what output.dir holds and vocodes it all again, for a rerun of the same job as
    for another's (identity.claim): the help said it was for "another job's outputs"."""
    text = _help_keys()["output.overwrite"]
    assert "delete output.dir's outputs, this same job's too, and vocode every row again" in text, text
    assert "a rerun resumes the job" in text, text


def test_help_lists_the_values_of_every_key_that_takes_a_set_of_them(tmp_path):
    from enum import Enum

    from batchvoc.backends import BACKENDS
    from batchvoc.cli import compose
    from batchvoc.config import conf_options

    lines = _help_keys()
    expected = {"engine.backend": list(BACKENDS), "model.preset": conf_options("preset"),
                "log_level": ["DEBUG", "INFO", "WARNING", "ERROR"]}  # fmt: skip
    for key, kind in _schema_types().items():
        if isinstance(kind, type) and issubclass(kind, Enum):
            expected[key] = [m.value for m in kind]
    assert {"input.mel_scale", "check.mel_convention", "engine.precision", "output.format"} <= set(expected)
    for key, values in expected.items():
        assert f"; one of {', '.join(values)} [" in lines[key], lines[key]
        for value in values:  # every value shown is one the configuration takes
            compose(["job=demo", f"output.dir={tmp_path}", f"{key}={value}"])
    assert all("one of" not in line for key, line in lines.items() if key not in expected)


def test_help_gives_each_jobs_value_of_a_key_the_jobs_set():
    from omegaconf import OmegaConf

    from batchvoc.cli import compose, job_names

    lines = _help_keys()
    jobs = {job: OmegaConf.to_container(compose([f"job={job}"]), enum_to_str=True) for job in job_names()}

    def value(job: str, key: str):
        found = jobs[job]
        for part in key.split("."):
            found = found[part]
        return "null" if found is None else str(found)

    per_job = set()
    for key, line in lines.items():
        if key in ("demo", "model.hparams", "engine.options", "io.storage_options"):  # mappings: no per-job values
            continue
        if "${" in line:  # output.dir, engine.cache_dir: shown as written, before interpolation
            continue
        shown = line.rsplit(" [", 1)[1].removesuffix("]")
        if shown.startswith("per job: "):
            per_job.add(key)
            given = {job: v for group in shown.removeprefix("per job: ").split("; ")
                     for v, names in [group.removesuffix(")").split(" (", 1)] for job in names.split(", ")}  # fmt: skip
            assert given == {job: value(job, key) for job in jobs}, line
        else:  # every job has the default shown
            assert {value(job, key) for job in jobs} == {shown}, line
    assert {"engine.precision", "model.preset", "model.checkpoint"} <= per_job
    assert "fp32 (demo, hifigan_v1); bf16 (v3_bf16, v4_bf16); fp16 (v3_fp16, v4_fp16)]" in lines["engine.precision"]


def test_help_lists_each_engine_option_with_its_backends_and_values_and_the_cluster_options(tmp_path):
    """engine.options' keys come from backends.py (TUNABLES, CHOICES, INTEGERS), each value shown one the checks
    take; the cluster group's options (conf/cluster/*.yaml) are listed with the default marked."""
    from batchvoc.backends import CHOICES, INTEGERS, TUNABLES
    from batchvoc.cli import compose, help_text
    from batchvoc.config import conf_options

    text = help_text()
    section = text.split("\nengine.options (", 1)[1].split("\n\n", 1)[0]
    lines = {line.split()[0]: line for line in section.splitlines()[1:]}
    assert set(lines) == {option for options in TUNABLES.values() for option in options}
    for option, line in lines.items():
        backends = line.split(None, 1)[1].split("; ", 1)[0].split(", ")
        assert backends == [b for b, options in TUNABLES.items() if option in options], line
        if option in CHOICES:
            assert line.endswith(f"; one of {', '.join(CHOICES[option])}"), line
            for value in CHOICES[option]:
                compose(["job=demo", f"output.dir={tmp_path}", f"+engine.options.{option}={value}"])
        elif option in INTEGERS:
            assert f"an integer, {INTEGERS[option][0]}" in line, line
    assert "cuDNN" in lines["cudnn_benchmark"] and "cuDNN" not in lines["cuda_graphs"], lines["cuda_graphs"]
    assert "up to 8 rows per batch on a GPU outside a job" in lines["cuda_graphs"], lines["cuda_graphs"]
    assert "the keys each backend takes, below" in _help_keys()["engine.options"]

    clusters = text.split("\nclusters (cluster=NAME) [local]:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in clusters] == conf_options("cluster") and "existing" in conf_options("cluster")
    assert compose(["job=demo", f"output.dir={tmp_path}", "cluster=existing"]).cluster.address == "auto"
