"""The driver: check everything before any work, plan shards, start one actor per device, deal shards, show
progress, write summary.json; Ray restarts actors that die and retries their shards (runner/actors.py).

The start overlaps: the local Ray starts while the manifest is planned and the weights are read (once, then
shared with every actor through Ray's object store); each actor takes its first shards the moment it is ready.
Exit codes: 0 every row ok, 2 some rows failed, 1 the job could not run (stopped early, or shards not finished).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray
from torch import nn

from batchvoc.chunking import ChunkPlan
from batchvoc.device_defaults import default_batch, default_row_length
from batchvoc.engines import check_backend
from batchvoc.engines.cache import weights_digest
from batchvoc.errors import InterruptedWhenDone, counted, interrupted_by
from batchvoc.manifest import Shard
from batchvoc.manifest.conventions import MelChecks
from batchvoc.manifest.estimate import estimate_frames
from batchvoc.manifest.schema import (
    ManifestFiles,
    check_manifest_footers,
    manifest_root,
    output_overlap,
    refuse_if_every_row_declares_wrong,
)
from batchvoc.manifest.shards import ManifestRows
from batchvoc.models import load_vocoder, model_preset
from batchvoc.models.presets import Preset
from batchvoc.outputs import passthrough_schema, write_lhotse
from batchvoc.runner import worker_logs
from batchvoc.runner.actors import create_actors, setup_actors
from batchvoc.runner.checks import quick_checks
from batchvoc.runner.cluster import HEAD_LOST, HeadWatch, RayThread, announce, connect, disconnect, plan_actors
from batchvoc.runner.dealer import Dealt, StopJob, deal
from batchvoc.runner.early import unfinished
from batchvoc.runner.failures import FailureTally, console_lines
from batchvoc.runner.interrupts import EndGuard, second_interrupt_exits, terminate_as_interrupt
from batchvoc.runner.lifetime import SessionGuard, process_started_at
from batchvoc.runner.resume import hold_output, identify
from batchvoc.runner.worker import weights_of
from batchvoc.runtime import EngineOptions, plan_chunks
from batchvoc.settings import JobSettings
from batchvoc.stats import JobSummary, RunSummary, ShardStats, Totals
from batchvoc.storage import Store, WriteFault, reaching

log = logging.getLogger(__name__)


@dataclass
class JobReport:
    """What the job did: the summary written to summary.json, and the exit code."""

    summary: JobSummary
    failed_shards: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the job stopped early

    @property
    def exit_code(self) -> int:
        """0 every row ok, 2 some rows failed or are suspect, 1 shards not finished or the job stopped early."""
        return 1 if self.failed_shards or self.stopped else self.summary.exit_code


def check_settings(settings: JobSettings, files: ManifestFiles | None = None) -> ManifestFiles:
    """The checks before anything starts: runner/checks.py's quick ones (unless their `files` are given: the
    caller ran them), then whether the backend can run here (tensorrt installed, aoti able to build); returns the
    manifest files."""
    files = quick_checks(settings) if files is None else files
    check_backend(settings.backend, settings.precision)
    return files


@dataclass
class Planned:
    """What planning learnt before the shards are cut: the manifest's rows (`ManifestRows`), and its shards cut on
    audio alone, those of files without n_frames with their frames estimated from a few rows' .npy headers (made
    while Ray starts; `cut` keeps the shards whose cut does not depend on the engine's plan)."""

    rows: ManifestRows
    on_audio: list[Shard]


def plan(settings: JobSettings, files: ManifestFiles, preset: Preset) -> Planned:
    """Every file's schema checked (empty parts skipped; no rows at all: ConfigError), the model's n_mels, sample
    rate and hop against what every row declares (footer statistics), then what the shard plan needs of the
    manifest (`cut` makes the shards from it)."""
    with reaching("input.manifest", settings.manifest):
        overlap = output_overlap(settings.manifest, settings.out_url)  # the listing left output.dir's files out
        if overlap:
            log.info("%s", overlap)
        if files.left_out:  # other batchvoc jobs' output manifests
            log.warning("%s", files.left_out)
        footers = check_manifest_footers(files.paths)  # read once: the declared values come from them too
        checks = MelChecks.for_preset(preset, settings.mel_scale, settings.mel_convention)
        refuse_if_every_row_declares_wrong(footers, checks.check_declared)
        rows = ManifestRows.read([footer.path for footer in footers], root=manifest_root(settings.manifest),
                                 extension=settings.fmt)  # fmt: skip
        return Planned(rows, estimate_frames(rows.shards(_target_frames(settings, preset))))


def cut(settings: JobSettings, planned: Planned, preset: Preset, packing: ChunkPlan | None) -> list[Shard]:
    """The shard plan: shards of about input.shard_seconds of audio, cut where their rows fill whole batches of
    `packing` (manifest/shards.py; None: on audio alone). Only the files `packing` cuts otherwise than `plan`'s cut
    on audio are cut again; where a file has no n_frames, its shards' frames (for the progress bar) are those `plan`
    estimated."""
    return planned.rows.recut(planned.on_audio, _target_frames(settings, preset), packing)


def _target_frames(settings: JobSettings, preset: Preset) -> int:
    return int(settings.shard_seconds * preset.frame_rate)


def engine_plan(settings: JobSettings, model: nn.Module, preset: Preset, gpu: bool) -> ChunkPlan:
    """The ChunkPlan the actors will run (runtime.plan_for's, for a GPU actor where the cluster has GPUs, else a
    CPU one): engine.batch and engine.window where set, else the device's defaults (device_defaults.py)."""
    device = "cuda" if gpu else "cpu"
    options = EngineOptions.from_settings(settings, device)
    batch = options.batch or default_batch(device)
    return plan_chunks(model, preset, batch, options.chunk_frames, default_row_length(device, preset.frame_rate))


def run_job(settings: JobSettings, on_actor_ready: Callable[[dict[str, Any]], None] | None = None,
            ray_thread: RayThread | None = None, checked: ManifestFiles | None = None) -> JobReport:  # fmt: skip
    """Run (or finish) the job; shards already done are skipped.

    `on_actor_ready` is called with each actor's `Worker.info()` (actor, device, backend, pid, ...) once it is ready.
    `ray_thread`: Ray already starting for this job (__main__ begins it before importing torch); the caller
    closes it. None: the job starts Ray itself where it has work. `checked`: the manifest files of quick_checks
    the caller already ran. Raises ConfigError (naming the key) for bad configuration, before any output is
    written.
    """
    started, started_at = time.perf_counter(), time.time()
    timeline = Timeline()
    if ray_thread is not None:
        timeline.mark("Ray starting", ray_thread.begun_at)
    files = check_settings(settings, checked)
    timeline.mark("checked")
    # the job lock first: a second job on output.dir stops here; `ending` outlasts it (a Ctrl-C at the end waits)
    with EndGuard() as ending, hold_output(settings) as job:
        settings = replace(settings, job_token=job.token)
        store = job.store
        with ThreadPoolExecutor(3, thread_name_prefix="plan") as pool:
            # a finished job's rerun (summary.json there, not of an interrupted or stopped run) usually has
            # nothing to do: it plans and checks its identity with the preset alone, and reads the weights and
            # starts Ray only for the shards it finds left to run
            with reaching("output.dir", store.url):
                work = ray_thread is not None or unfinished(store)
            vocoder = _Vocoder(pool, settings, timeline, read=work)
            planning = pool.submit(lambda: timeline.timed("planned", plan, settings, files, vocoder.preset()))
            # the input's digests (~0.1 s a GB) while Ray starts, not between Ray's start and the actors'
            identifying = pool.submit(lambda: identify(settings, vocoder.preset()))
            # connect here while the pool plans, unless Ray is starting on the caller's thread already (it is
            # waited for once the plan stands: a bad checkpoint or manifest stops the job without waiting for Ray)
            cluster = _Cluster.start(settings.address, timeline) if work and ray_thread is None else None
            shards: list[Shard] = []
            # filled as dealing goes (an interrupted job's summary has it); its steps logged as they become known
            dealt, tally = Dealt(on_step=timeline.mark_earliest), FailureTally()
            try:
                planned = planning.result()
                preset = vocoder.preset()
                # one output-manifest schema for every shard (datasets / pandas read them together); ConfigError
                with reaching("input.manifest", settings.manifest):
                    columns = passthrough_schema(planned.rows.files_with_rows())
                # the job's identity: another job's outputs stop it before any work
                job.claim(settings, preset, identifying.result())

                def packing() -> ChunkPlan:  # a new job's: the actors' engine plan, on the devices Ray has
                    nonlocal cluster
                    loading = vocoder.weights()  # read while Ray starts
                    cluster = cluster or _Cluster.start(settings.address, timeline, ray_thread)
                    model = loading.result()[0]
                    return engine_plan(settings, model, preset, bool(ray.cluster_resources().get("GPU")))

                shards = cut(settings, planned, preset, job.shard_packing(preset, packing))
                shards = [replace(s, columns=columns) for s in shards]  # each shard's sink conforms to it
                job.redo_changed_mels(shards, settings.fmt)  # .npy mels rewritten since their shard finished
                todo = [s for s in shards if s.name not in job.done]
                log.info("%s planned, %d already done, %d to run", counted(len(shards), "shard"),
                         len(shards) - len(todo), len(todo))  # fmt: skip
                if todo:
                    loading = vocoder.weights()  # read while Ray starts, where they were not read already
                    cluster = cluster or _Cluster.start(settings.address, timeline, ray_thread)
                    _run(settings, cluster, loading, todo, preset, tally, on_actor_ready, timeline, dealt)
                    ending.begin()  # before "shards done" is said: a Ctrl-C from then on lets the end finish
                    timeline.mark("shards done")
            except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (errors.Terminated)
                if not shards:  # before the plan stood: nothing to count
                    if cluster is not None:
                        _stop(cluster, timeline)
                    raise
                # Ctrl-C: summary.json and report.html say what was done and what was not run, as an early stop's
                # do (a second Ctrl-C ends the process at once)
                timeline.mark("interrupted")
                dealt.stopped = TERMINATED if interrupted_by()[0] == "SIGTERM" else INTERRUPTED
                with second_interrupt_exits():
                    ran = {s.name for s in shards if s.name not in job.done}
                    summary = _end(settings, store, shards, ran, started, started_at, dealt, cluster, timeline)
                    _say_interrupted(summary)
                raise
            except BaseException:
                if cluster is not None:  # stopped or failed: shut Ray down before the error goes on
                    _stop(cluster, timeline)
                raise
        ending.begin()  # where no shard was left to run
        summary = _end(settings, store, shards, {s.name for s in todo}, started, started_at, dealt, cluster,
                       timeline)  # fmt: skip
    for line in _closing_lines(summary, store.url):
        log.warning("%s", line)
    report = JobReport(summary, sorted(set(dealt.failed) | set(summary.shards_not_written)), dealt.stopped)
    if ending.interrupted:
        _say_interrupted(summary)
        raise KeyboardInterrupt if summary.shards_not_written or summary.stopped_early else InterruptedWhenDone(report)
    return report


INTERRUPTED = "interrupted (Ctrl-C)"  # summary.json's stopped_early for a job ended by Ctrl-C
TERMINATED = "terminated (SIGTERM)"  # ... and by SIGTERM (kill, timeout, a batch scheduler's stop)


def _end(settings: JobSettings, store: Store, shards: list[Shard], ran: set[str], started: float, started_at: float,
         dealt: Dealt, cluster: _Cluster | None, timeline: Timeline) -> JobSummary:  # fmt: skip
    """The job's end, after its last shard or on Ctrl-C: a local Ray shuts down (~0.4-2 s) while the summary and
    report.html (and recordings.jsonl.gz) are written; summary.json last. Returns the summary."""
    stopping = threading.Thread(target=_stop, args=(cluster, timeline), name="ray-stop") if cluster else None
    if stopping is not None:
        stopping.start()
    wall = time.perf_counter() - started
    summary = _summary(settings, store, shards, ran, wall, dealt)
    if settings.lhotse:
        _write_lhotse(store.url)
    _write_report(store.url, summary)
    timeline.mark("report written")
    if stopping is not None:
        stopping.join()
    if dealt.stopped in (INTERRUPTED, TERMINATED) or (dealt.stopped or "").startswith(HEAD_LOST):
        # counted before its in-flight shards ended (SIGTERM's too), or, after a lost head, before the shards
        # running on nodes that outlive it stopped: those finished meanwhile count (later ones cannot)
        summary = _recount_interrupted(settings, store, shards, ran, wall, dealt, summary)
    if ran or not summary.timeline:  # a rerun with nothing to do keeps the working run's
        summary.started_at = started_at
        summary.timeline = dict(sorted(timeline.events.items(), key=lambda kv: kv[1]))
    try:
        store.write_json("summary.json", summary.to_json())
    except WriteFault as fault:
        log.error("summary.json not written: %s", fault)
        summary.write_fault = summary.write_fault or str(fault)
    return summary


def _recount_interrupted(settings: JobSettings, store: Store, shards: list[Shard], ran: set[str], wall: float,
                         dealt: Dealt, summary: JobSummary) -> JobSummary:  # fmt: skip
    """An interrupted job's summary once its actors have ended (or a job that lost its head, once its Ray is shut
    down): a shard in flight at Ctrl-C (at the loss) that wrote its output manifest by then counts done, and where
    every shard is done (Ctrl-C after the last one) the job is complete, not stopped early (`dealt.stopped`
    cleared). report.html is written again where that changes the summary."""
    not_done = _not_done(store, shards)
    if not not_done:
        dealt.stopped = None
    if not_done == summary.shards_not_written and dealt.stopped == summary.stopped_early:
        return summary
    summary = _summary(settings, store, shards, ran, wall, dealt)
    _write_report(store.url, summary)
    return summary


class Timeline:
    """Where the time went: seconds from this process's start to each step of the job (summary.json `timeline`),
    logged in time order.

    A step is logged as the driver learns of it, with its own time. Some are learned late: an actor's first
    steps come with its ready answer, its first shard and audio with its next report, Ray's start once the plan
    stands. Logged with their own times, those lines went back in time below later ones (`actors created` at
    6.6 s, then `actor-0 process started` at 6.1 s). Such a step's line is stamped when it is logged, saying its
    own time (`55.6 s after the process started: first shard begun; it happened at 52.2 s`), so the lines' times
    never go back; an actor's steps before its ready are said in its ready line (`actor-0 ready; its process
    started at 14.3 s, imported at 16.6 s, created at 16.8 s`)."""

    def __init__(self) -> None:
        self.origin = process_started_at()
        self.events: dict[str, float] = {}
        self.shown = 0.0  # the time the last line logged stands at (rounded as shown)

    def mark(self, event: str, at: float | None = None, steps: dict[str, float] | None = None) -> None:
        """Record `event` as happening now, or at `at` (epoch seconds), and log it. `steps`: earlier steps of the
        same thing (`process started` -> epoch seconds), recorded as `<first word of event> <step>` and said in
        event's line."""
        now = round(time.time() - self.origin, 3)
        self.events[event] = now if at is None else round(at - self.origin, 3)
        who = event.split()[0]
        earlier = []
        for step, when in (steps or {}).items():
            self.events[f"{who} {step}"] = round(when - self.origin, 3)
            earlier.append(f"{step} at {when - self.origin:.1f} s")
        said = f"; its {', '.join(earlier)}" if earlier else ""
        self._log(event, self.events[event], now, said)

    def _log(self, event: str, seconds: float, now: float, said: str) -> None:
        """The event's line (`said` added): at its own time where that is not before the last line's, else now,
        saying its own time (the class's doc)."""
        if round(seconds, 1) < round(self.shown, 1):
            said = f"; it happened at {seconds:.1f} s{said}"
            seconds = max(now, self.shown)
        self.shown = max(self.shown, seconds)
        log.info("%.1f s after the process started: %s%s", seconds, event, said)

    def mark_earliest(self, event: str, at: float) -> None:
        """Record `event` at `at` (epoch seconds) unless it is recorded earlier; logged the first time only. For
        the steps actors report (their first shard, their first audio), marked as the driver learns of them: with
        several actors a later report can move the step earlier than its line said."""
        seconds = round(at - self.origin, 3)
        if event in self.events:
            self.events[event] = min(self.events[event], seconds)
            return
        self.mark(event, at)

    def timed(self, event: str, call: Callable, *args: Any) -> Any:
        """call(*args), then mark `event`."""
        result = call(*args)
        self.mark(event)
        return result


@dataclass
class _Cluster:
    """The Ray this job runs on; a local one it started is shut down with it, every process of it included."""

    guard: SessionGuard | None
    head: HeadWatch | None = None  # a joined cluster's head, watched while the job runs

    @classmethod
    def start(cls, address: str, timeline: Timeline, ray_thread: RayThread | None = None) -> _Cluster:
        started_local = ray_thread.wait() if ray_thread is not None else connect(address)
        terminate_as_interrupt()  # over ray.init's SIGTERM handler and its core worker's crash report
        if ray_thread is None:
            announce()
        worker_logs.route()  # the actors' log lines above the progress bar and in batchvoc.log, as the driver's
        timeline.mark("Ray started" if started_local else "Ray joined", ray_thread.ready_at if ray_thread else None)
        if started_local:
            return cls(SessionGuard.start())
        return cls(None, HeadWatch.of_this_driver())

    def watch(self) -> None:
        if self.guard is not None:
            self.guard.watch()

    def stop(self) -> bool:
        """Shut down a local Ray this job started (True); a cluster it joined runs on (False)."""
        if self.head is not None:
            self.head.close()
        if self.guard is None:
            return False
        began = time.perf_counter()
        disconnect()
        self.guard.close()
        log.info("local Ray shut down in %.1f s", time.perf_counter() - began)
        return True


class _Vocoder:
    """The job's model and preset. The weights are read (in the plan's pool) where the run is expected to have work,
    else only once `weights` is called; the preset, which the plan and the job's identity need, is that read's where
    it was begun first, else one from a model built on the meta device (models.model_preset: no weights read)."""

    def __init__(self, pool: ThreadPoolExecutor, settings: JobSettings, timeline: Timeline, read: bool) -> None:
        self._read = lambda: pool.submit(timeline.timed, "weights read", _read_weights, settings)
        self._loading: Future[tuple[nn.Module, Preset]] | None = self._read() if read else None
        self._preset: Future[Preset] | None = None
        if not read:
            self._preset = pool.submit(model_preset, settings.preset, settings.checkpoint, settings.hparams)

    def preset(self) -> Preset:
        """load_vocoder's preset (waits for it); raises the loader's ConfigError."""
        return self._preset.result() if self._preset is not None else self._loading.result()[1]

    def weights(self) -> Future[tuple[nn.Module, Preset]]:
        """The weights' read, (model, preset) once done: begun at the first call where it was not at the start."""
        if self._loading is None:
            self._loading = self._read()
        return self._loading


def _read_weights(settings: JobSettings) -> tuple[nn.Module, Preset]:
    """load_vocoder's (model, preset), the weights' digest taken here, while Ray starts: the actors get it with
    the weights (worker.SharedWeights) and need not hash them again."""
    model, preset = load_vocoder(settings.preset, settings.checkpoint, settings.hparams)
    weights_digest(model)  # remembered for this model (engines/cache.py)
    return model, preset


def _done_shards(store: Store) -> set[str]:
    """The names of the shards whose output manifest is written (done)."""
    return {n.removesuffix(".parquet") for n in store.listing("manifest") if "/" not in n}


def _not_done(store: Store, shards: list[Shard]) -> list[str]:
    """The names of the shards whose output manifest is not written, sorted (summary.json shards_not_written)."""
    done = _done_shards(store)
    return sorted(s.name for s in shards if s.name not in done)


def _say_interrupted(summary: JobSummary) -> None:
    """Ctrl-C: how many of the planned shards are done (their output manifests written) and how many the same
    command runs again; every one done: that the job is complete."""
    left = len(summary.shards_not_written)
    if not left and not summary.stopped_early:
        log.warning("interrupted with every one of its %s done: summary.json is the complete job's",
                    counted(summary.shards, "shard"))  # fmt: skip
        return
    log.warning("interrupted with %d of %s done; the same command runs the other %d (summary.json: %s not run)",
                summary.shards - left, counted(summary.shards, "shard"), left,
                counted(summary.rows_not_run, "row"))  # fmt: skip


def _stop(cluster: _Cluster, timeline: Timeline) -> None:
    timeline.mark("Ray shut down" if cluster.stop() else "Ray left running (joined, not started)")


def _run(settings: JobSettings, cluster: _Cluster, loading: Future, todo: list[Shard], preset: Preset,
         tally: FailureTally, on_actor_ready: Callable | None, timeline: Timeline, dealt: Dealt) -> Dealt:  # fmt: skip
    """Start the actors (the driver's weights shared through the object store) and deal them the shards, filling
    `dealt`; stop early where the first rows all fail alike in more than one input file (or, where `todo` is one
    file's, in more than one shard): runner/failures.py."""
    actors = create_actors(settings, plan_actors(settings.cpu_actors), preset, weights_later=True)
    timeline.mark("actors created")
    # into the object store while the actors' processes start
    starting = setup_actors(actors, ray.put(weights_of(loading.result()[0])))
    end_imports = threading.Thread(target=_import_for_the_end, name="end-imports", daemon=True)

    def ready(info: dict[str, Any]) -> None:
        # its steps before (process started, imported, created) on the actor's own clock: another host's may differ
        timeline.mark(f"{info['actor']} ready", steps=info.get("started", {}))
        cluster.watch()  # the actor's process is one of the job's now
        if on_actor_ready:
            on_actor_ready(info)

    by_file = len({shard.file for shard in todo}) > 1  # the early stop's sources: files, or the one's shards

    def finished(shard: Shard, stats: dict[str, Any]) -> None:
        if end_imports.ident is None:  # the first shard done: dealing is under way, not at its start
            end_imports.start()
        if tally.ok or stats.get("rows_ok"):
            tally.ok += stats.get("rows_ok", 0)
            return  # some rows are fine: never stop early
        tally.add(_outcomes(Store(settings.out_url), shard.name), shard.file if by_file else shard.name)
        reason = tally.early_stop(by_file)
        if reason:
            raise StopJob(reason)

    seconds_per_frame = preset.hop_length / preset.sample_rate
    try:
        return deal(actors, todo, seconds_per_frame, starting, on_ready=ready, on_shard=finished,
                    permanent=_permanent, result=dealt,
                    head_lost=cluster.head.lost if cluster.head is not None else None)  # fmt: skip
    finally:  # the end imports the same modules: two threads importing one package can meet it half made (CI saw
        if end_imports.ident is not None:  # "cannot import name 'build' from partially initialized module")
            end_imports.join()


def _import_for_the_end() -> None:
    """Import, while the shards run, what the job's end imports after its last shard: the report's matplotlib,
    pyarrow's dataset reader (pq.read_table of the output manifests), Ray's shutdown's compiled-graph module; on
    a CPU 0.6 s of the ~1.2 s between the last shard and the report written."""
    try:
        import pyarrow.dataset  # noqa: F401
        import ray.dag.compiled_dag_node  # noqa: F401

        import batchvoc.report.render  # noqa: F401
    except Exception:  # noqa: BLE001 - the end imports them again, and says what fails there
        pass


def _permanent(err: BaseException) -> bool:
    """A write fault that every later shard would hit too (no space, permission, read-only, ...)."""
    return isinstance(err, WriteFault) and err.permanent


def _outcomes(store: Store, shard: str) -> list[dict[str, Any]]:
    """A finished shard's rows from its output manifest: id, status, error."""
    data = pa.BufferReader(store.read_bytes(f"manifest/{shard}.parquet"))
    return pq.read_table(data, columns=["id", "status", "error"]).to_pylist()


def _top_failures(store: Store, stats: list[ShardStats]) -> tuple[list[dict[str, Any]], int, int]:
    """The top reasons over every shard with failed or suspect rows, and the (reasons, rows) they leave out."""
    tally = FailureTally()
    for s in stats:
        if s.rows_not_ok:
            tally.add(_outcomes(store, s.shard))
    return (tally.top(), *tally.left_out())


def _closing_lines(summary: JobSummary, out_url: str) -> list[str]:
    """The console's last lines: why the job stopped early, the top reasons for failed or suspect rows (and how
    many more there are, and where)."""
    lines = []
    if summary.stopped_early:
        lines.append(f"stopped early: {summary.stopped_early}")
    if summary.top_failures:
        lines.append("top reasons for failed or suspect rows:")
        manifest = f"{out_url.rstrip('/')}/manifest/"
        lines += console_lines(summary.top_failures, summary.top_failures_left_out,
                               summary.top_failures_left_out_rows, manifest)  # fmt: skip
    return lines


def _write_lhotse(out) -> None:
    """output.lhotse=true: recordings.jsonl.gz of every ok row so far (batchvoc/outputs.py)."""
    try:
        log.info("lhotse RecordingSet: %s", write_lhotse(out))
    except Exception as err:  # noqa: BLE001 - the audio and manifests are written; this is an index of them
        log.error("recordings.jsonl.gz could not be written: %s", err)


def _write_report(out, summary: JobSummary) -> None:
    """report.html (batchvoc/report); a report that cannot be drawn costs a warning, never the job."""
    from batchvoc.report import write_report

    try:
        write_report(out, summary)
    except Exception as err:  # noqa: BLE001 - the job's outputs are written; the report is a view of them
        log.warning("report.html could not be written: %s (python -m batchvoc.report %s retries)", err, out)


def _summary(settings: JobSettings, store: Store, shards: list[Shard], ran: set[str], wall: float,
             dealt: Dealt) -> JobSummary:  # fmt: skip
    """Row and audio totals over every planned shard (earlier runs' included) and this run's apart (`this_run`);
    speed over this run's shards. The rows of shards not done (a write fault, an early stop) are not run
    (rows_not_run), not failed: rows_failed counts the rows that ran and failed, as the output manifests say.

    startup_s: this process's start to the first audio written (None when nothing was vocoded); actors_ready:
    per actor, seconds from its start to its engine ready, and how the engine got there (built / loaded).
    """
    done = _done_shards(store)
    names = {n.removesuffix(".json") for n in store.listing("stats") if "/" not in n}
    stats = [ShardStats.from_json(store.read_json(f"stats/{s.name}.json")) for s in shards if s.name in names & done]
    unwritten = {s.name: s.rows for s in shards if s.name not in done}  # every one is this run's (todo)
    not_run = sum(unwritten.values())
    job, run = Totals.merge(stats), Totals.merge(s for s in stats if s.shard in ran)
    faults = [reason for reason in dealt.failed.values() if reason.startswith("cannot write to output.dir")]
    first = dealt.actors[0] if dealt.actors else {}
    x_realtime = run.audio_seconds_vocoded / wall if wall > 0 else 0.0  # reused rows' audio is no work of this run
    top_failures, left_out, left_out_rows = _top_failures(store, stats)
    this_run = RunSummary(shards=len(ran), rows_ok=run.rows_ok, rows_suspect=run.rows_suspect,
                          rows_failed=run.rows_failed, rows_not_run=not_run, rows_vocoded=run.rows_vocoded,
                          rows_reused=run.rows_reused, audio_seconds=run.audio_seconds,
                          audio_seconds_vocoded=run.audio_seconds_vocoded, wall_seconds=wall,
                          x_realtime=x_realtime)  # fmt: skip
    summary = JobSummary(
        rows_ok=job.rows_ok,
        rows_suspect=job.rows_suspect,
        rows_clipped=job.rows_clipped,
        rows_failed=job.rows_failed,
        rows_not_run=not_run,
        audio_seconds=job.audio_seconds,
        wall_seconds=wall,
        startup_s=dealt.first_audio_at - process_started_at() if dealt.first_audio_at else None,
        x_realtime=x_realtime,
        actors=len(dealt.actors),
        actors_ready=[{k: a.get(k) for k in ("actor", "ready_s", "load_path", "device", "pid")} for a in dealt.actors],
        backend=first.get("backend", settings.backend),
        precision=first.get("precision", settings.precision),
        devices=sorted({a["device"] for a in dealt.actors}),
        shards=len(shards),
        shards_skipped=len(shards) - len(ran),
        shards_failed=sorted(dealt.failed),
        stopped_early=dealt.stopped,
        shards_not_written=sorted(unwritten),
        write_fault=faults[0] if faults else None,
        top_failures=top_failures,
        top_failures_left_out=left_out,
        top_failures_left_out_rows=left_out_rows,
        this_run=this_run,
        config=settings.as_config(),
    )
    still = sorted(set(dealt.running_at_loss) & set(unwritten))
    if still:  # a lost head's: they may still write their outputs after this summary (docs/running.md)
        summary.extra[RUNNING_AT_LOSS] = still
    if not ran and store.exists("summary.json"):
        # nothing ran: the job's figures stay those of the last run that did the work (this_run says 0)
        earlier = JobSummary.from_json(store.read_json("summary.json"))
        summary = replace(summary, **{k: getattr(earlier, k) for k in LAST_WORKING_RUN})
    return summary


# summary.json's key: the shards not written that were running when the job lost its cluster's head
RUNNING_AT_LOSS = "shards_running_at_head_loss"
# summary fields that describe the run that did the work, kept by a rerun that finds nothing to do
LAST_WORKING_RUN = ("wall_seconds", "startup_s", "x_realtime", "actors", "actors_ready", "backend", "precision",
                    "devices", "timeline", "started_at")  # fmt: skip
