"""The driver: check everything before any work, plan shards, start one worker per device, deal shards,
re-deal the shards of a worker that died, show progress, write summary.json.

Exit codes: 0 every row ok, 2 some rows failed, 1 the job could not run (or some shards could not finish).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from tqdm import tqdm

from batchvoc.engines import check_backend
from batchvoc.manifest import Shard, check_manifest_files, find_manifest_files, plan_shards
from batchvoc.models import load_vocoder
from batchvoc.models.presets import Preset
from batchvoc.outputs import check_lhotse, write_lhotse
from batchvoc.runner.cluster import connect, plan_actors
from batchvoc.runner.worker import Worker
from batchvoc.settings import JobSettings
from batchvoc.sink import check_format, check_writable, done_shards, remove_partials, write_json

log = logging.getLogger(__name__)
IN_FLIGHT_PER_ACTOR = 2
RESTART_WAIT_S, RESTART_WAITS = 1.0, 300  # a shard waits up to 5 min in all for its restarting actor
# Ray's "actor is restarting" error (a subclass of RayActorError); older Rays lack it
_RESTARTING = getattr(ray.exceptions, "ActorUnavailableError", ())


@dataclass
class JobReport:
    """What the job did: the summary written to summary.json, and the exit code."""

    summary: dict[str, Any]
    failed_shards: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.failed_shards:
            return 1
        return 2 if self.summary["rows_failed"] else 0


def preflight(settings: JobSettings) -> tuple[list[Shard], Preset]:
    """Every check that can fail on configuration, before any work; returns the shard plan and the preset."""
    check_format(settings.fmt, settings.subtype)
    check_backend(settings.backend, settings.precision)
    files = check_manifest_files(find_manifest_files(settings.manifest))  # empty parts skipped; no rows: error
    _, preset = load_vocoder(settings.preset, settings.checkpoint, settings.hparams)  # checks keys and shapes
    check_writable(settings.out_path)
    if settings.lhotse:
        check_lhotse()
    target_frames = int(settings.shard_seconds * preset.sample_rate / preset.hop_length)
    return plan_shards(files, target_frames), preset


def run_job(settings: JobSettings, on_actor_ready: Callable[[dict[str, Any]], None] | None = None) -> JobReport:
    """Run (or finish) the job; shards already done are skipped.

    `on_actor_ready` is called with each actor's `Worker.info()` (actor, device, backend, pid, ...) once it is ready.
    """
    started, started_at = time.perf_counter(), time.time()
    shards, preset = preflight(settings)
    out = settings.out_path
    done = done_shards(out)
    todo = [s for s in shards if s.name not in done]
    for folder in ("manifest", "stats"):
        remove_partials(out / folder)
    log.info("%d shards planned, %d already done, %d to run", len(shards), len(shards) - len(todo), len(todo))
    actors_info: list[dict[str, Any]] = []
    failed: list[str] = []
    if todo:
        connect(settings.address)
        actors, actors_info = _start_workers(settings)
        for item in actors_info if on_actor_ready else ():
            on_actor_ready(item)
        failed = _deal(actors, todo, settings.max_attempts, preset)
    wall = time.perf_counter() - started
    summary = _summary(settings, shards, {s.name for s in todo}, wall, actors_info, failed)
    summary["started_at"] = started_at
    if settings.lhotse:
        _write_lhotse(out)
    _write_report(out, summary)
    write_json(out / "summary.json", summary)
    return JobReport(summary, failed)


def _write_lhotse(out) -> None:
    """output.lhotse=true: recordings.jsonl.gz of every ok row so far (batchvoc/outputs.py)."""
    try:
        log.info("lhotse RecordingSet: %s", write_lhotse(out))
    except Exception as err:  # noqa: BLE001 - the audio and manifests are written; this is an index of them
        log.error("recordings.jsonl.gz could not be written: %s", err)


def _write_report(out, summary: dict[str, Any]) -> None:
    """report.html (batchvoc/report); a report that cannot be drawn costs a warning, never the job."""
    from batchvoc.report import write_report

    try:
        write_report(out, summary)
    except Exception as err:  # noqa: BLE001 - the job's outputs are written; the report is a view of them
        log.warning("report.html could not be written: %s (python -m batchvoc.report %s retries)", err, out)


def _start_workers(settings: JobSettings) -> tuple[list, list[dict[str, Any]]]:
    plan = plan_actors(settings.cpu_actors)
    remote = ray.remote(Worker).options(**plan.options, max_restarts=settings.max_attempts)
    actors = [remote.remote(settings, name=f"actor-{i}", threads=plan.threads) for i in range(plan.count)]
    info = ray.get([a.info.remote() for a in actors])  # raises here, before any shard, if a worker cannot start
    for item in info:
        log.info("%(actor)s: %(device)s, %(backend)s %(precision)s, ready in %(startup_s).1f s", item)
    return actors, info


def _deal(actors: list, todo: list[Shard], max_attempts: int, preset: Preset) -> list[str]:
    """Deal shards to workers (largest first, round robin, then to whoever is free); returns shards that failed."""
    pending = deque(sorted(todo, key=lambda s: -s.frames))
    in_flight: dict[Any, tuple[int, Shard]] = {}
    attempts: Counter[str] = Counter()
    waits: Counter[str] = Counter()
    deaths: Counter[int] = Counter()
    alive = set(range(len(actors)))
    failed: list[str] = []
    seconds_per_frame = preset.hop_length / preset.sample_rate

    def fill() -> None:
        for _ in range(IN_FLIGHT_PER_ACTOR):
            for i in sorted(alive):
                busy = sum(1 for j, _ in in_flight.values() if j == i)
                if pending and busy < IN_FLIGHT_PER_ACTOR:
                    shard = pending.popleft()
                    in_flight[actors[i].run.remote(shard)] = (i, shard)

    total = sum(s.frames for s in todo) * seconds_per_frame
    with tqdm(total=round(total, 1), unit="s audio", dynamic_ncols=True, smoothing=0.1) as bar:
        fill()
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            i, shard = in_flight.pop(ready[0])
            try:
                ray.get(ready[0])
                bar.update(round(shard.frames * seconds_per_frame, 1))
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as err:
                if isinstance(err, _RESTARTING) and waits[shard.name] < RESTART_WAITS:
                    # the actor is being restarted by Ray: not the shard's fault, so not an attempt
                    waits[shard.name] += 1
                    log.warning("actor-%d is restarting; dealing shard %s again once it is back", i, shard.name)
                    time.sleep(RESTART_WAIT_S)
                    pending.appendleft(shard)
                    fill()
                    continue
                if isinstance(err, ray.exceptions.RayActorError):
                    deaths[i] += 1
                    if deaths[i] > max_attempts:
                        alive.discard(i)
                attempts[shard.name] += 1
                if attempts[shard.name] < max_attempts and alive:
                    log.warning("shard %s failed on actor-%d (%s); dealing it again", shard.name, i, _first_line(err))
                    pending.appendleft(shard)
                else:
                    log.error("shard %s failed %d times: %s", shard.name, attempts[shard.name], _first_line(err))
                    failed.append(shard.name)
            fill()
    failed += [s.name for s in pending]
    return failed


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def _summary(settings: JobSettings, shards: list[Shard], ran: set[str], wall: float,
             actors_info: list[dict[str, Any]], failed: list[str]) -> dict[str, Any]:  # fmt: skip
    """Row and audio totals over every planned shard (earlier runs' included); speed over this run's shards."""
    stats = []
    for shard in shards:
        path = settings.out_path / "stats" / f"{shard.name}.json"
        if path.exists() and shard.name not in failed:
            stats.append(json.loads(path.read_text()))
    audio = sum(s["audio_seconds"] for s in stats)
    audio_now = sum(s["audio_seconds"] for s in stats if s["shard"] in ran)
    first = actors_info[0] if actors_info else {}
    return dict(
        rows_ok=sum(s["rows_ok"] for s in stats),
        rows_failed=sum(s["rows_failed"] for s in stats),
        audio_seconds=audio,
        wall_seconds=wall,
        x_realtime=audio_now / wall if wall > 0 else 0.0,
        actors=len(actors_info),
        backend=first.get("backend", settings.backend),
        precision=first.get("precision", settings.precision),
        devices=sorted({a["device"] for a in actors_info}),
        shards=len(shards),
        shards_skipped=len(shards) - len(ran),
        shards_failed=failed,
        config=settings.config,
    )
