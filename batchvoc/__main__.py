"""python -m batchvoc job=NAME [key=value ...]: vocode a Parquet mel manifest into audio files.

`-m` sweeps run every job in turn in this process (Hydra's basic launcher), job N into output.dir/N; each
leaves Ray shut down for the next, and the exit code is the worst of them (1 over 2 over 0).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from batchvoc.bytecode import use_bytecode_cache

use_bytecode_cache()  # before the heavy imports, which it speeds up where the image ships no bytecode

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf, open_dict  # noqa: E402

from batchvoc.cli import (  # noqa: E402
    HELP_FLAGS,
    MULTIRUN_FLAGS,
    check_command_line,
    console_for_pipes,
    help_text,
    remove_made_folders,
)
from batchvoc.config import register  # noqa: E402
from batchvoc.errors import (  # noqa: E402
    ConfigError,
    InterruptedWhenDone,
    StartError,
    counted,
    duration,
    interrupted_by,
    reader_gone,
)
from batchvoc.runner.interrupts import terminate_as_interrupt  # noqa: E402

if TYPE_CHECKING:
    from batchvoc.runner.driver import JobReport

log = logging.getLogger("batchvoc")
register()
_codes: list[int] = []  # each job's exit code, in the order the jobs ran
_refused: list[bool] = []  # each job's: refused before any work (a ConfigError), its log folder removed
_jobs: list[tuple[list[str], str]] = []  # each job's overrides and output.dir, for a sweep's closing lines
_did: list[str] = []  # each job's work this run, as its sweep line says it (job_did; "" where it did not end)
_did_now = ""  # the running job's, set by run()
_early = None  # the command line's one job, checked and its Ray begun before Hydra runs it (runner/early.EarlyStart)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def _job(cfg: DictConfig) -> int:
    """One job (a sweep calls it once per combination): its exit code, recorded for the process's."""
    global _did_now
    logging.getLogger().setLevel(cfg.get("log_level", "INFO"))
    code, _did_now = 1, ""
    log_folder, refused = _log_folder_made_now(), False
    _hide_secrets_in_records(cfg)
    try:
        _sweep_folder(cfg)
        code = run(cfg)
    except ConfigError as err:  # refused before any work: its one line says it all, and output.dir is as it was
        _cannot_run(err)
        _remove_log_folder(log_folder)
        refused = True
    except StartError as err:  # the job's log keeps the first actor's error in full
        _cannot_run(err)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (errors.Terminated)
        code = interrupted_by()[1]
        raise
    except Exception as err:
        from batchvoc.storage import from_client

        if not from_client(err):
            raise
        _store_failed(err, str(cfg.output.dir))
    finally:
        _codes.append(code)
        _refused.append(refused)
        _did.append(_did_now)
        _jobs.append((_task_overrides(), str(cfg.output.dir)))
        _leave_clean()
    return code


def _store_failed(err: BaseException, out: str) -> None:
    """An object store that failed once the job had begun (gone down, keys expired): one line, not its client's
    traceback (in the job's log); what the job finished stays, and the same command goes on from it."""
    from batchvoc.storage import describe

    said = f"the job could not go on: {describe(err, out)}; the shards written to {out} are kept, and the same "
    said += "command finishes the job once the store answers"
    for handler in logging.getLogger().handlers:  # the traceback in the job's log file only, as _cannot_run's
        if not isinstance(handler, logging.FileHandler) and _not_file_only not in handler.filters:
            handler.addFilter(_not_file_only)
    log.error("%s", said, exc_info=err, extra={"file_only": True})
    print(f"batchvoc: {said}", file=sys.stderr, flush=True)


def _cannot_run(err: ConfigError | StartError) -> None:
    """Say why the job cannot run, once, on stderr (run says it before waiting for its Ray to start and shut
    down) and in the job's log file (not on the console again); a StartError's cause, traceback and all, is
    logged first."""
    if getattr(err, "said", False):
        return
    if isinstance(err, StartError):
        log.error("the first actor's error:\n%s", str(err.cause).rstrip() or repr(err.cause))
    for handler in logging.getLogger().handlers:
        if not isinstance(handler, logging.FileHandler) and _not_file_only not in handler.filters:
            handler.addFilter(_not_file_only)
    log.error("cannot run: %s", err, extra={"file_only": True})
    print(f"batchvoc: cannot run: {err}", file=sys.stderr, flush=True)
    err.said = True


def _log_folder_made_now() -> Path | None:
    """The job's log folder (Hydra's output folder: output.dir[/N]/logs/<time>/) where this run made it, i.e. its
    log file is still empty (a run started in the same second would have written to it); else None."""
    from hydra.core.hydra_config import HydraConfig

    folder = Path(HydraConfig.get().runtime.output_dir)
    files = [Path(h.baseFilename) for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    mine = [f for f in files if f.parent == folder]
    if not mine or any(f.exists() and f.stat().st_size > 0 for f in mine):
        return None
    if {p.name for p in folder.iterdir()} - {".hydra"} - {f.name for f in mine}:
        return None  # something else is in there: not this run's alone
    return folder


def _remove_log_folder(folder: Path | None) -> None:
    """Remove this run's log folder (`_log_folder_made_now`) of a job refused before any work, and the folders
    above it that are left empty (logs/, a sweep job's N/): output.dir as the job found it (`cli.remove_made_folders`
    removes an output.dir the command's check made)."""
    if folder is None:
        return
    import shutil

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    root = logging.getLogger()
    for handler in list(root.handlers):  # the job's log file is closed before its folder goes
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == folder:
            root.removeHandler(handler)
            handler.close()
    shutil.rmtree(folder, ignore_errors=True)
    hc = HydraConfig.get()
    above = [folder.parent] if folder.parent.name == "logs" else []  # not a hydra.run.dir of the user's own
    if above and hc.mode == RunMode.MULTIRUN and folder.parent.parent.name == str(hc.job.num):
        above.append(folder.parent.parent)  # the sweep job's N/
    for parent in above:
        try:
            parent.rmdir()  # only where it is empty
        except OSError:
            break


def _not_file_only(record: logging.LogRecord) -> bool:
    """A console handler's filter: records logged with extra={"file_only": True} go to the log file alone."""
    return not getattr(record, "file_only", False)


def main(argv: list[str] | None = None) -> int:
    """The command: help, the configuration checked for every job, then Hydra runs them; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in HELP_FLAGS for arg in argv):
        print(help_text())
        return 0
    try:
        configs = check_command_line(argv)
        if len(configs) > 1:
            from batchvoc.runner.checks import check_sweep

            check_sweep(configs)
    except ConfigError as err:
        print(f"batchvoc: cannot run: {err}", file=sys.stderr)
        remove_made_folders()  # refused before any job ran: no empty output.dir left behind
        return 1
    _secrets.clear()
    for cfg in configs:
        _note_secrets(cfg)
    _hide_secrets_in_logs()
    if configs:  # checked: no flag takes a value; Hydra's parser wants flags before overrides (`job=x -m a=1,2`)
        sys.argv = [sys.argv[0], *(a for a in argv if a.startswith("-")), *(a for a in argv if not a.startswith("-"))]
    global _early
    console_for_pipes()
    terminate_as_interrupt()  # SIGTERM (kill, timeout, a batch scheduler) ends a job as a Ctrl-C does
    _codes.clear()
    _refused.clear()
    _jobs.clear()
    _did.clear()
    sweep_record = _sweep_record(configs, argv)
    single = len(configs) == 1 and not any(arg in MULTIRUN_FLAGS for arg in argv)
    if single:
        from batchvoc.runner.early import EarlyStart

        _early = EarlyStart()
        _early.start(configs[0])
        if _early.error is not None:  # refused before Hydra makes the job's log folder, like a sweep's job
            print(f"batchvoc: cannot run: {_early.error}", file=sys.stderr)
            _early = None
            remove_made_folders()
            return 1
    interrupted = False
    try:
        _job()
    except KeyboardInterrupt as err:
        interrupted = True
        done = single and isinstance(err, InterruptedWhenDone)  # a sweep's other jobs are still to run
        what = "the job was complete" if done else "run the same command again to finish what is missing"
        by, code = interrupted_by()
        print(f"batchvoc: {'interrupted' if by == 'Ctrl-C' else 'terminated (SIGTERM)'}; {what}", file=sys.stderr)
        return code
    finally:
        if _early is not None:
            _early.close(interrupted)
            _early = None
        if sweep_record is not None and _refused and all(_refused):  # Hydra's record of a sweep that did nothing
            sweep_record.unlink(missing_ok=True)
        remove_made_folders()  # an output.dir made by the checks and left empty (its jobs refused) goes too
    if len(_codes) > 1:
        print(sweep_closing(_jobs, _codes, _refused, _did), file=sys.stderr, flush=True)
    return worst(_codes)


OUTCOMES = {0: "every row ok", 2: "rows failed or suspect (its summary line above)"}


def sweep_closing(jobs: list[tuple[list[str], str]], codes: list[int], refused: list[bool],
                  did: list[str] | None = None) -> str:
    """A sweep's last lines: each job's swept values (the overrides that differ between its jobs), how it ended,
    what it did this run (`did`, job_did's: a rerun whose shards were all done before ran nothing) and its output
    folder, so a job refused or failed among many is not lost in the lines above."""
    values = [dict(o.split("=", 1) for o in overrides if "=" in o) for overrides, _ in jobs]
    swept = [k for k in dict.fromkeys(k for v in values for k in v) if len({v.get(k) for v in values}) > 1]
    did = did if did is not None else [""] * len(codes)
    lines = [f"batchvoc: sweep of {len(codes)} jobs, exit code {worst(codes)}:"]
    for num, ((_, out), value, code, no, work) in enumerate(zip(jobs, values, codes, refused, did, strict=True)):
        which = " ".join(f"{k}={value.get(k, 'unset')}" for k in swept)
        ended = ("refused before any work (its 'cannot run' line above)" if no
                 else OUTCOMES.get(code, "could not run or stopped early (its lines above, its log)"))  # fmt: skip
        if work and code in OUTCOMES:  # how it ended is the earlier runs' work too: say what this run did
            ended = f"{work}; {ended}" if work.startswith("nothing") else f"{ended}; {work}"
        lines.append(f"  job {num}{f' ({which})' if which else ''}: {ended}; {out}")
    return "\n".join(lines)


def job_did(report: JobReport) -> str:
    """What a job's run did, for its sweep line: "nothing to do (its 1 shard done before)" where every shard
    was done by an earlier run, "1 of 3 shards run, 2 done before" where it resumed a job; "" for a job run
    whole (or one that did not finish: its code says so)."""
    s = report.summary
    run = s.this_run.shards if s.this_run is not None else 0
    if report.failed_shards or not s.shards_skipped:
        return ""
    done = "its 1 shard" if s.shards == 1 else f"all {s.shards} shards"
    if not run:
        return f"nothing to do ({done} done before)"
    return f"{run} of {counted(s.shards, 'shard')} run, {s.shards_skipped} done before"


def _task_overrides() -> list[str]:
    """The running job's command-line overrides (Hydra's task overrides), io.storage_options' secrets hidden."""
    from hydra.core.hydra_config import HydraConfig

    from batchvoc.settings import hide_secrets

    return [hide_secrets(o, _secrets) for o in HydraConfig.get().overrides.task]


_secrets: set[str] = set()  # the running job's io.storage_options secrets (settings.secret_values)


def _hide_secrets_in_records(cfg: DictConfig) -> None:
    """Hydra has written the job's config, its overrides and (a sweep) multirun.yaml in plain text before the job
    runs: rewrite them with io.storage_options' keys, secrets and tokens as "<redacted>" (output.dir may be a
    folder others read; summary.json and report.html record the config redacted too)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from batchvoc.settings import hide_secrets

    _note_secrets(cfg)
    hc = HydraConfig.get()
    records = list(Path(hc.runtime.output_dir, hc.output_subdir).glob("*.yaml")) if hc.output_subdir else []
    if hc.mode == RunMode.MULTIRUN:
        records.append(Path(hc.sweep.dir, "multirun.yaml"))
    for path in filter(Path.is_file, records):
        text = path.read_text()
        if (hidden := hide_secrets(text, _secrets)) != text:
            path.write_text(hidden)


def _note_secrets(cfg: DictConfig) -> None:
    """Add cfg's io.storage_options secrets to those the logs and records hide (_secrets)."""
    from batchvoc.settings import secret_values

    try:
        _secrets.update(secret_values(OmegaConf.to_container(cfg.io.storage_options, resolve=True)))
    except Exception:  # a config the job refuses, naming the key
        return


def _hide_secrets_in_logs() -> None:
    """Every log record's message from now on with _secrets as "<redacted>" (Hydra's launcher logs each sweep
    job's overrides, io.storage_options' keys among them, to the console)."""
    from batchvoc.settings import hide_secrets

    make = logging.getLogRecordFactory()
    if getattr(make, "hides_secrets", False):
        return

    def record(*args, **kwargs) -> logging.LogRecord:
        made = make(*args, **kwargs)
        if _secrets:
            try:
                made.msg, made.args = hide_secrets(made.getMessage(), _secrets), ()
            except Exception:  # a message its arguments do not fit: logging reports it where it is emitted
                pass
        return made

    record.hides_secrets = True
    logging.setLogRecordFactory(record)


def _sweep_record(configs: list, argv: list[str]) -> Path | None:
    """The multirun.yaml a sweep's Hydra will write in output.dir (its sweep folder), where none is there yet:
    removed again when every job of the sweep is refused before any work."""
    if not configs or not any(arg in MULTIRUN_FLAGS for arg in argv):
        return None
    from batchvoc.config import local_folder

    record = Path(local_folder(str(configs[0].output.dir))).expanduser() / "multirun.yaml"
    return None if record.exists() else record


def worst(codes: list[int]) -> int:
    """The process's exit code over its jobs: 143 / 130 (SIGTERM / Ctrl-C) over 1 (could not run) over 2 (rows
    failed) over 0; 0 when none ran."""
    for code in (143, 130, 1, 2):
        if code in codes:
            return code
    return max(codes, default=0)


def run(cfg: DictConfig) -> int:
    """One job from its resolved config; logs the closing summary line and returns the job's exit code."""
    from batchvoc.runner.checks import quick_checks
    from batchvoc.runner.cluster import INTERRUPTED_WAIT_S, RayThread
    from batchvoc.runner.early import starts_ray_early
    from batchvoc.settings import JobSettings

    if cfg.get("demo") and not cfg.input.manifest:
        _make_demo_input(cfg)
    settings = JobSettings.from_config(cfg)
    started = _early.take(settings) if _early is not None else None  # the command line's one job
    if started is not None:
        files, ray_thread = started
    else:
        files = quick_checks(settings)  # bad configuration stops here, in a second, before Ray or torch
        ray_thread = RayThread(settings.address) if starts_ray_early(settings) else None
    interrupted = False
    try:
        from batchvoc.runner.driver import run_job

        report = run_job(settings, ray_thread=ray_thread, checked=files)
    except (ConfigError, StartError) as err:
        _cannot_run(err)  # now: closing a Ray still starting waits for its start (~4 s)
        raise
    except KeyboardInterrupt as err:
        interrupted = True
        if isinstance(err, InterruptedWhenDone) and err.report is not None:  # a complete job: its closing lines
            log_closing(err.report, settings.out_url, settings.retry_failed)
        raise
    finally:
        if ray_thread is not None:  # Ctrl-C: not for long, whatever Ray's start is doing
            ray_thread.close(INTERRUPTED_WAIT_S if interrupted else None)
    log_closing(report, settings.out_url, settings.retry_failed)
    global _did_now
    _did_now = job_did(report)
    return report.exit_code


RETRY_HINT = (
    "failed rows stay failed on a rerun; once their input is fixed, output.retry_failed=true vocodes them "
    "again (a changed manifest file or setting, input.mel_scale among them, is a new job: a new output.dir, or "
    "output.overwrite=true)"
)


def _failed_rows_hint(failed: int, retry_failed: bool) -> None:
    """For `failed` rows (of done shards: rows not run are run by any rerun): how to vocode them again, or, where
    output.retry_failed did, that they failed again and where their cause can be fixed: a retry reads the mel
    files again, not the manifest or the settings."""
    if failed > 0 and retry_failed:
        log.info("batchvoc: %s failed again with output.retry_failed=true, for the reasons above (the error column "
                 "of the output manifest, manifest/*.parquet): a retry reads their mel files again, so a cause in "
                 "a mel file is fixed there; one in the manifest (an id, an inline mel) or a setting "
                 "(input.mel_scale among them) is a new job: a new output.dir, or output.overwrite=true",
                 counted(failed, "row"))  # fmt: skip
    elif failed > 0:
        log.info("batchvoc: %s", RETRY_HINT)


def _head_lost() -> str:
    """How summary.json's stopped_early begins for a job that lost its cluster's head (Ray is imported by then)."""
    from batchvoc.runner.cluster import HEAD_LOST

    return HEAD_LOST


def _running_at_loss(summary) -> str:
    """For a job that lost its head: the shards it counts as not run that were running on actors then, which on
    nodes that outlive the head may still finish after summary.json is written (nothing can stop them)."""
    from batchvoc.runner.driver import RUNNING_AT_LOSS

    running = summary.extra.get(RUNNING_AT_LOSS) or []
    if not running:
        return ""
    one = len(running) == 1
    return (f"; {counted(len(running), 'shard')} of them {'was' if one else 'were'} running when the head was lost, "
            f"and on a node that outlives the head {'it' if one else 'they'} may still finish after this summary "
            "(until that node's Ray gives up on the lost head: gcs_rpc_server_reconnect_timeout_s, 60 s by "
            "default): output.dir then holds more finished shards than summary.json counts, and the next run "
            "counts them and skips them")


def _early_stop_advice(shards: int, not_run: int, failed: int) -> str:
    """What an early stop left and how to finish it: the shards (and rows) not run, which the same command runs,
    exactly those, once the cause is fixed where the job reads it; the rows that ran and failed stay failed unless
    output.retry_failed is on; a fix in a setting, the checkpoint or a manifest file is a new job."""
    rows = f" ({counted(not_run, 'row')})" if not_run else ""
    ran = (f"; the {counted(failed, 'row')} that ran and failed stay failed, unless output.retry_failed=true is added"
           if failed else "")  # fmt: skip
    return (f"stopped early: {counted(shards, 'shard')}{rows} not run. Once the cause above is fixed where the job "
            f"reads it again (a mel_path row's .npy file, a worker's keys or environment), the same command runs "
            f"exactly those{ran}. A cause fixed in a setting (input.mel_scale among them), the checkpoint or a "
            "manifest file (its ids, inline mels) makes a new job: a new output.dir, or output.overwrite=true")


def log_closing(report: JobReport, out_url: str, retry_failed: bool = False) -> None:
    """The job's closing lines: nothing to do, or the summary line (rows ok, suspect, failed: they ran; not run:
    rows of shards that did not finish, said only where there are some); then the write fault that left rows not
    run, or the shards an early stop did not run, or those that could not finish, or what to do about failed rows
    (`retry_failed`: output.retry_failed was on). (A .npy mel rewritten since its row was vocoded is no longer
    "nothing to do": the rerun vocodes it again, runner/resume.OutputHold.redo_changed_mels.)"""
    s = report.summary
    if s.this_run is not None and not s.this_run.shards and not report.failed_shards:
        done = "its 1 shard was" if s.shards == 1 else f"all {s.shards} shards were"
        log.info("batchvoc: nothing to do: %s done before (%s ok, %d suspect, %d failed); outputs in %s "
                 "(summary.json)", done, counted(s.rows_ok, "row"), s.rows_suspect, s.rows_failed, out_url)  # fmt: skip
        _failed_rows_hint(s.rows_failed, retry_failed)
        return
    # the speed is over the audio this run vocoded: where that is not all the audio, say how much it is
    resumed = s.this_run is not None and (s.shards_skipped > 0 or s.this_run.rows_reused > 0)
    n_reused = s.this_run.rows_reused if resumed else 0
    reused = f", {counted(n_reused, 'row')} reused" if n_reused else ""
    this_run = f" ({duration(s.this_run.audio_seconds_vocoded)} vocoded this run{reused})" if resumed else ""
    nothing = resumed and s.this_run.audio_seconds_vocoded <= 0 and s.this_run.rows_reused > 0
    speed = "no audio vocoded (reused)" if nothing else f"{s.x_realtime:.1f}x real time"
    not_run = f", {s.rows_not_run} not run" if s.rows_not_run else ""
    log.info(
        "batchvoc: %s ok, %d suspect, %d failed%s, %d clipped; %s of audio%s, %s on %s "
        "(%s %s); outputs in %s (summary.json)",
        counted(s.rows_ok, "row"), s.rows_suspect, s.rows_failed, not_run, s.rows_clipped, duration(s.audio_seconds),
        this_run, speed, counted(s.actors, "actor"), s.backend, s.precision, out_url,
    )  # fmt: skip
    if s.write_fault and s.rows_not_run:  # (summary.json's own fault, every shard done, the driver said)
        shards = counted(len(report.failed_shards or s.shards_not_written), "shard")
        log.error("batchvoc: %s not run (%s not written): %s; once output.dir can be written, the same command "
                  "runs them", counted(s.rows_not_run, "row"), shards, s.write_fault)  # fmt: skip
    elif report.failed_shards and report.stopped and report.stopped.startswith(_head_lost()):
        log.error("batchvoc: %s (%s) not run: the same command runs exactly those once the cluster is back, or "
                  "against a new head (cluster.address)%s", counted(len(report.failed_shards), "shard"),
                  counted(s.rows_not_run, "row"), _running_at_loss(s))  # fmt: skip
    elif report.failed_shards and report.stopped:  # an early stop: every row met the cause so far
        log.error("batchvoc: %s", _early_stop_advice(len(report.failed_shards), s.rows_not_run, s.rows_failed))
    elif report.failed_shards:
        log.error("batchvoc: shards that could not finish: %s; run again to retry", ", ".join(report.failed_shards))
    else:
        _failed_rows_hint(s.rows_failed, retry_failed)


def _sweep_folder(cfg: DictConfig) -> None:
    """In a sweep, job N writes into output.dir/N (Hydra's sweep subdir), so jobs never share outputs."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:
        with open_dict(cfg):
            cfg.output.dir = f"{str(cfg.output.dir).rstrip('/')}/{hc.job.num}"
        log.info("sweep job %s (%s) -> %s", hc.job.num, " ".join(_task_overrides()), cfg.output.dir)


def _leave_clean() -> None:
    """Shut down the Ray this job connected to or started, so the next job of a sweep starts from nothing."""
    from batchvoc.runner.cluster import disconnect

    disconnect()


def _make_demo_input(cfg: DictConfig) -> None:
    from batchvoc.demo import build_demo_manifest
    from batchvoc.models.presets import get_preset

    folder = Path(cfg.output.dir).expanduser().resolve() / "demo_input"
    path = build_demo_manifest(folder, get_preset(cfg.model.preset), cfg.demo.utterances, cfg.demo.seconds)
    with open_dict(cfg):
        cfg.input.manifest = str(path)
    log.info("demo manifest: %s", path)


def exit_now(code: int) -> None:
    """End the process with `code` once its logs are flushed: the jobs' outputs are written and their Ray shut
    down, so Python's own teardown of torch, Ray and their threads (about a second) would only delay the shell."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(reader_gone(main))
