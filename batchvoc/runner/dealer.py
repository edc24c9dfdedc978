"""Dealing shards to actors and showing progress.

Shards go in plan order, and an actor's next shard is the one that continues its last (same file, the next
rows) where there is one (`ShardQueue`): its Parquet reader then goes on from where the last shard stopped instead
of decoding the row group from its start. Each actor gets IN_FLIGHT_PER_ACTOR of them the moment it is ready (not
when all are) and another whenever one comes back, so its next shard's reading overlaps the last one's writes.
Ray restarts a dead actor and retries its shards (runner/actors.py); a shard Ray gave up on (its actor died for
good, or cannot be reached: its node lost) is dealt again, once, to the others. An actor that cannot be reached
gets no more shards until it answers again (Ray restarts it where its resources are free: on a cluster that lost a
node, maybe never); the job finishes on the others. Progress moves per vocoded batch: the driver polls each actor's
audio seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil
import ray
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from batchvoc.errors import ConfigError, StartError
from batchvoc.manifest import Shard
from batchvoc.storage import WriteFault, access_kind, describe, from_client, is_url

log = logging.getLogger(__name__)
IN_FLIGHT_PER_ACTOR = 2
POLL_S = 0.25  # progress polls per actor at most this often
KILL_WAIT_S = 10.0  # at most this long for killed actors' shards in flight to end (an early stop)
PROGRESS_LOG_S = 30.0  # a progress log line this often where stderr is no terminal (no bar)
BAR_COLUMNS = 100  # the bar's width on a terminal that reports none


class StopJob(Exception):  # noqa: N818 - a signal to stop dealing, not an error of the dealer
    """Raised by `on_shard` to stop the job early (the reason is the message)."""


@dataclass
class Dealt:
    """What dealing did: stats per finished shard, failures, the actors' info and when audio first landed."""

    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # shard name -> reason
    actors: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None  # why dealing stopped early, if it did
    # the shards running on actors when a lost head stopped dealing: nothing can end them, and on nodes that
    # outlive the head they may still finish (write their outputs) after the summary is written
    running_at_loss: list[str] = field(default_factory=list)
    first_audio_at: float | None = None  # epoch seconds
    first_shard_at: float | None = None  # epoch seconds an actor began its first shard
    # told (step, epoch seconds) each time a step's earliest time is known or moves earlier: the driver's timeline
    on_step: Callable[[str, float], None] | None = field(default=None, repr=False)

    def audio_written_at(self, at: float | None) -> None:
        """An actor's first audio was written at `at` (epoch seconds; None: not yet): keep the earliest."""
        self.first_audio_at = self._step("first audio written", self.first_audio_at, at)

    def shard_begun_at(self, at: float | None) -> None:
        """A shard began at `at` (epoch seconds; None: not known): keep the earliest."""
        self.first_shard_at = self._step("first shard begun", self.first_shard_at, at)

    def _step(self, step: str, kept: float | None, at: float | None) -> float | None:
        earliest = _earliest(kept, at)
        if earliest != kept and self.on_step is not None:
            self.on_step(step, earliest)
        return earliest


def _earliest(kept: float | None, at: float | None) -> float | None:
    return min(kept or at, at) if at else kept


class ShardQueue:
    """Shards waiting to be dealt, in plan order. `next_for(last, others)` is the waiting shard that continues
    `last` (same file, starting where it stopped), else the first waiting shard of a file no other actor is on,
    else the first one that no other actor's last shard leads to, else the first waiting one."""

    def __init__(self, shards: list[Shard]):
        self._order: deque[Shard] = deque(shards)
        self._waiting = {s.name for s in shards}
        self._by_start = {(s.file, s.start): s for s in shards}

    def __len__(self) -> int:
        return len(self._waiting)

    def __iter__(self):
        return (s for s in self._order if s.name in self._waiting)

    def put_back(self, shard: Shard) -> None:
        """Deal `shard` again, first."""
        self._order.appendleft(shard)
        self._waiting.add(shard.name)
        self._by_start[(shard.file, shard.start)] = shard

    def clear(self) -> None:
        self._waiting.clear()

    def next_for(self, last: Shard | None, others: list[Shard | None]) -> Shard:
        """Take the next shard for an actor whose last shard was `last` (others: the other actors' last)."""
        follow = self._by_start.get((last.file, last.stop)) if last is not None else None
        if follow is None or follow.name not in self._waiting:
            while self._order[0].name not in self._waiting:
                self._order.popleft()
            files = {s.file for s in others if s is not None}
            ahead = {(s.file, s.stop) for s in others if s is not None}
            follow = next((s for s in self if s.file not in files), None)  # lazy: usually the first one
            follow = follow or next((s for s in self if (s.file, s.start) not in ahead), self._order[0])
        self._waiting.discard(follow.name)
        return follow


@dataclass
class _Actor:
    handle: Any
    name: str
    busy: int = 0
    last: Shard | None = None  # the shard dealt to it last
    ready: bool = False
    dead: bool = False
    poll: Any = None
    polled_at: float = 0.0
    vocoded: dict[int, float] = field(default_factory=dict)  # pid -> audio seconds (a restart is a new pid)
    pid: int | None = None  # its process, and the host it runs on, once ready
    host: str | None = None
    away: bool = False  # a shard was lost with it unreachable (its node gone?): none dealt until it answers again
    back: Any = None  # the ref of its `ready()` while away: it answers once Ray has restarted it

    @property
    def where(self) -> str:
        return f"{self.name} (pid {self.pid} on {self.host})" if self.pid else self.name


class AudioTotal:
    """The progress bar's total, in seconds of audio: each shard's planned audio, except that a shard whose frames
    were estimated (`frames_guessed`: no n_frames column) counts the audio it wrote once it is done, and the others
    like it the audio a row those done wrote (rows that fail write none); before any is done, their estimate."""

    def __init__(self, shards: list[Shard], seconds_per_frame: float):
        self._per_frame = seconds_per_frame
        self._known = sum(s.frames for s in shards if not s.frames_guessed) * seconds_per_frame
        self._waiting = {s.name: s for s in shards if s.frames_guessed}
        self._waiting_rows = sum(s.rows for s in self._waiting.values())
        self._waiting_frames = sum(s.frames for s in self._waiting.values())
        self._done_rows, self._done_s = 0, 0.0
        self._done_planned = 0.0  # the done shards of known frames: their planned audio

    def finished(self, shard: Shard, stats: dict[str, Any]) -> None:
        """`shard` is done and wrote `stats` (ShardStats.to_json())."""
        if self._waiting.pop(shard.name, None) is None:
            self._done_planned += shard.frames * self._per_frame
            return
        self._waiting_rows -= shard.rows
        self._waiting_frames -= shard.frames
        self._done_rows += shard.rows
        self._done_s += float(stats.get("audio_seconds", 0.0))

    @property
    def done(self) -> float:
        """The audio of the shards done, as the total counts it: a shard of known frames its planned audio (rows it
        refused are done too), an estimated one the audio it wrote."""
        return self._done_planned + self._done_s

    @property
    def seconds(self) -> float:
        if self._done_rows:
            waiting = self._waiting_rows * self._done_s / self._done_rows
        else:
            waiting = self._waiting_frames * self._per_frame
        return self._known + self._done_s + waiting


def deal(actors: list, shards: list[Shard], seconds_per_frame: float, ready: list | None = None,
         on_ready: Callable[[dict[str, Any]], None] | None = None,
         on_shard: Callable[[Shard, dict[str, Any]], None] | None = None,
         permanent: Callable[[BaseException], bool] = lambda err: False,
         result: Dealt | None = None, head_lost: Callable[[], str | None] | None = None) -> Dealt:  # fmt: skip
    """Run every shard on the actors; returns what happened (never raises for a shard's failure).

    ready: per actor, a ref of its info once ready (default: its `ready()`); on_ready(info) for each actor once
    ready; on_shard(shard, stats) after each finished shard (it may raise
    StopJob); permanent(error): True for a shard error that every later shard would hit too (no space left):
    dealing stops; result: the Dealt to fill (its caller keeps what dealing did so far when it is interrupted);
    head_lost(): why the cluster's head is lost (cluster.HeadWatch), else None: dealing stops, its actors left as
    they are (nothing reaches them through a lost head).
    Raises ConfigError (an actor's) or StartError when no actor could start.
    """
    result = Dealt() if result is None else result
    crew = [_Actor(handle, f"actor-{i}") for i, handle in enumerate(actors)]
    pending = ShardQueue(shards)
    starting = dict(zip(ready or [a.handle.ready.remote() for a in crew], crew, strict=True))
    in_flight: dict[Any, tuple[_Actor, Shard]] = {}
    redealt: set[str] = set()
    start_errors: list[BaseException] = []
    total = AudioTotal(shards, seconds_per_frame)

    def feed(actor: _Actor) -> None:
        while pending and actor.ready and not actor.dead and not actor.away and actor.busy < IN_FLIGHT_PER_ACTOR:
            shard = actor.last = pending.next_for(actor.last, [a.last for a in crew if a is not actor])
            in_flight[actor.handle.run.remote(shard)] = (actor, shard)
            actor.busy += 1

    with progress_bar(total.seconds) as bar:
        # an away actor holds the job only where no other can take the shards left (Ray may yet restart it)
        while in_flight or starting or (pending and any(a.ready and not a.dead for a in crew)):
            polls = {a.poll: a for a in crew if a.poll is not None}
            backs = {a.back: a for a in crew if a.back is not None}
            refs = [*starting, *in_flight, *polls, *backs]
            done, _ = ray.wait(refs, num_returns=1, timeout=POLL_S) if refs else ([], [])
            if done:
                rest = [r for r in refs if r not in done]
                done += ray.wait(rest, num_returns=len(rest), timeout=0)[0] if rest else []
            for ref in done:
                if ref in starting:
                    actor = starting.pop(ref)
                    try:
                        info = ray.get(ref)
                    except Exception as err:  # noqa: BLE001 - an actor that cannot start: the others go on
                        actor.dead = True
                        start_errors.append(err)
                        log.error("%s could not start: %s", actor.name, first_line(err))
                        continue
                    actor.ready, actor.pid, actor.host = True, info.get("pid"), info.get("host")
                    result.actors.append(info)
                    log.info("%(actor)s ready in %(ready_s).1f s (%(load_path)s): %(device)s, %(backend)s "
                             "%(precision)s, pid %(pid)d", info)  # fmt: skip
                    if on_ready:
                        on_ready(info)
                    feed(actor)
                elif ref in in_flight:
                    actor, shard = in_flight.pop(ref)
                    actor.busy -= 1
                    _finished(ref, actor, shard, result, pending, redealt, permanent, on_shard, bool(in_flight))
                    if shard.name in result.stats:
                        total.finished(shard, result.stats[shard.name])
                    if result.stopped:
                        break
                    for other in crew:  # a shard put back goes to an actor with room (not to an away one)
                        feed(other)
                elif ref in backs:
                    actor = backs[ref]
                    _came_back(ref, actor)
                    feed(actor)
                else:
                    actor = polls[ref]
                    actor.poll = None
                    try:
                        state = ray.get(ref)
                    except Exception:  # noqa: BLE001 - a restarting actor: ask again later
                        continue
                    actor.vocoded[state["pid"]] = state["vocoded_s"]
                    _note_pid(actor, state["pid"])
                    result.shard_begun_at(state.get("first_shard_at"))
                    result.audio_written_at(state["first_audio_at"])
            now = time.monotonic()
            for actor in crew:
                if actor.away and actor.back is None and not actor.dead:
                    actor.back = actor.handle.ready.remote()
                if actor.busy and actor.poll is None and now - actor.polled_at >= POLL_S:
                    actor.poll, actor.polled_at = actor.handle.poll.remote(), now
            _show(bar, crew, total)
            if result.stopped:
                for actor in crew:  # their shards in flight end with them; partial files go on the next run
                    ray.kill(actor.handle, no_restart=True)
                _end_killed(crew, list(in_flight))
                pending.clear()
                break
            lost = head_lost() if head_lost is not None else None
            if lost:  # shards in flight on other nodes may still finish: their outputs count at the next run
                log.error("%s", lost)
                result.stopped = lost
                result.running_at_loss = sorted({shard.name for _, shard in in_flight.values()})
                pending.clear()
                break
        _show(bar, crew, total)  # the last shards' audio (their actors were not polled after them)
    if not result.actors and start_errors:
        cause = _cause(start_errors[0])
        if isinstance(cause, ConfigError):
            raise cause
        raise StartError(f"no actor could start: {_start_reason(cause)}", start_errors[0])
    for shard in pending:
        result.failed.setdefault(shard.name, "no actor left to run it")
    return result


def _note_pid(actor: _Actor, pid: int | None) -> None:
    """The process an actor answered from: another than its last one is Ray's restart of it, said once."""
    if pid is None or pid == actor.pid:
        return
    if actor.pid is not None:
        log.warning("%s ended and Ray restarted it (pid %d now): the shards it was running run again",
                    actor.where, pid)  # fmt: skip
    actor.pid = pid


def _came_back(ref, actor: _Actor) -> None:
    """An away actor's `ready()` came back: it answers again (restarted by Ray), or it died for good."""
    actor.back = None
    try:
        info = ray.get(ref)
    except ray.exceptions.ActorDiedError as err:
        actor.dead = True
        log.warning("%s is gone for good (%s)", actor.where, first_line(err))
        return
    except ray.exceptions.RayActorError:  # still unreachable: asked again on the next round
        return
    except Exception as err:  # noqa: BLE001 - it answers, but cannot work (its restart could not build its engine)
        actor.dead = True
        log.warning("%s was restarted by Ray but cannot work: %s", actor.where, first_line(err))
        return
    actor.away, actor.pid, actor.host = False, info.get("pid"), info.get("host")
    log.warning("%s answers again (restarted by Ray): it takes shards again", actor.where)


def _end_killed(crew: list[_Actor], refs: list) -> None:
    """After ray.kill of the crew (an early stop), wait up to KILL_WAIT_S for their shards in flight to end: their
    refs ready, and the processes on this host gone. ray.kill returns at once, and a dying actor's shard could
    still write its output manifest after the summary said it was not written (its rows counted as not run there,
    and as failed in output.dir)."""
    deadline = time.monotonic() + KILL_WAIT_S
    if refs:
        ray.wait(refs, num_returns=len(refs), timeout=KILL_WAIT_S)
    here, processes = socket.gethostname(), []
    for actor in crew:
        if actor.pid and actor.host == here:
            with contextlib.suppress(psutil.Error):
                processes.append(psutil.Process(actor.pid))
    psutil.wait_procs(processes, timeout=max(0.0, deadline - time.monotonic()))


@contextlib.contextmanager
def progress_bar(total: float) -> Iterator[tqdm]:
    """The job's bar over `total` seconds of audio, on stderr. Log lines on the console go above it
    (tqdm's logging_redirect_tqdm), not onto the bar's line. Where stderr is no terminal (a console redirected to a
    file) there is no bar, whose redraws would leave carriage-return fragments glued to the log lines there: a log
    line gives the progress every PROGRESS_LOG_S instead (`_show`)."""
    # seconds of audio per second always (tqdm's default turns a rate under 1 into "s/s audio", easily misread)
    form = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}]"
    options = dict(unit="s audio", smoothing=0.1, mininterval=0.5, bar_format=form) | _bar_width(sys.stderr)
    with logging_redirect_tqdm(), tqdm(total=round(total, 1), disable=not sys.stderr.isatty(), **options) as bar:
        bar.logged_at = time.monotonic()  # the last progress line, where there is no bar
        yield bar


def _bar_width(stream) -> dict:
    """tqdm's size options for a bar on stream: the terminal's, followed as it is resized; BAR_COLUMNS wide where the
    terminal says it has no columns (a pseudo-terminal whose size was never set: tqdm took it for a screen of no
    rows and drew an empty line), with rows to show it."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # no file descriptor, or not a terminal
        columns = 0
    return {"dynamic_ncols": True} if columns > 0 else {"ncols": BAR_COLUMNS, "nrows": 24}


def _show(bar: tqdm, crew: list[_Actor], total: AudioTotal) -> None:
    """Move the bar to the audio vocoded so far: the actors' last polls, or the done shards' audio where that is
    more (an actor is not polled once its last shard is done). The total's seconds replace the bar's where they
    changed (drawn with the next update: tqdm keeps to mininterval)."""
    seconds = total.seconds
    if round(seconds, 1) != bar.total:
        bar.total = round(seconds, 1)
    polled = sum(sum(a.vocoded.values()) for a in crew)
    vocoded = round(min(max(polled, total.done), seconds), 1)
    if vocoded > bar.n:  # n set, not added to: n + (vocoded - n) can pass vocoded by an ulp (23.300000000000004/23.3,
        bar.n = vocoded  # tqdm's "clamping frac" warning and a negative time left)
        bar.update(0)  # update, not refresh: tqdm keeps to mininterval
    if bar.disable and time.monotonic() - bar.logged_at >= PROGRESS_LOG_S:
        bar.logged_at = time.monotonic()
        share = f" ({bar.n / bar.total:.0%})" if bar.total else ""
        log.info("vocoded %.1f of %.1f s of audio%s", bar.n, bar.total or 0.0, share)


def _finished(ref, actor: _Actor, shard: Shard, result: Dealt, pending: ShardQueue, redealt: set[str],
              permanent: Callable[[BaseException], bool], on_shard: Callable[[Shard, dict[str, Any]], None] | None,
              others_running: bool = False) -> None:  # fmt: skip
    """Book one shard call that came back: its stats, or its failure (dealt again once if its actor is gone). An
    on_shard StopJob after the last shard is no stop: nothing was left to stop."""
    try:
        stats = ray.get(ref)
    except ray.exceptions.RayActorError as err:  # Ray's restarts and retries are spent
        if isinstance(err, ray.exceptions.ActorDiedError):
            actor.dead = True
        elif not actor.away:  # unreachable (its node lost, or its process restarting): Ray may restart it, or not
            actor.away = True
            log.warning("%s cannot be reached (its node or process lost?): its shards go to the other actors; it "
                        "takes shards again once Ray has restarted it, which waits for its resources (a CPU or "
                        "GPU) to be free on a node", actor.where)  # fmt: skip
        if shard.name not in redealt:
            redealt.add(shard.name)
            log.warning("shard %s lost with %s (%s); dealing it again", shard.name, actor.name, first_line(err))
            pending.put_back(shard)
        else:
            result.failed[shard.name] = f"lost twice with its actor: {first_line(err)}"
        return
    except Exception as err:  # noqa: BLE001 - the shard raised: Ray does not retry what would repeat
        cause = _cause(err)
        reason, kind = first_line(cause), ""
        if from_client(cause) and not isinstance(cause, WriteFault):  # WriteFault: output.dir's, said already
            kind = access_kind(cause)
        if kind:  # the store gone down, or this worker's environment is not the driver's (no keys, no endpoint)
            where = f"{actor.name} on {actor.host}" if actor.host else actor.name
            said = describe(cause, shard.file if is_url(shard.file) else "")  # the hints of the input's store
            reason = f"on worker {where} (the workers' environment counts, not only the driver's): {said}"
        result.failed[shard.name] = reason
        log.error("shard %s failed: %s", shard.name, reason)
        if permanent(cause) or kind in ("credentials", "options"):  # every later shard would meet it too
            result.stopped = f"{reason} (no further shards dealt)"
        return
    result.stats[shard.name] = stats
    _note_pid(actor, stats.get("pid"))
    result.shard_begun_at(stats.get("started_at"))  # a shard may end between two progress polls
    result.audio_written_at(stats.get("first_audio_at"))
    if on_shard:
        try:
            on_shard(shard, stats)
        except StopJob as stop:
            if pending or others_running:
                result.stopped = str(stop)


def _start_reason(cause: BaseException) -> str:
    """An actor's start error in one line. A compiler's (torch.compile / AOTInductor: Dynamo's exceptions) is named
    by the error inside it, whose message ends with Dynamo's advice on its own logs, and says how to run without
    compiling (e.g. BigVGAN's per-utterance spans, which Inductor cannot compile on a CPU with torch 2.13)."""
    if type(cause).__module__.startswith(("torch._dynamo", "torch._inductor")):
        inner = getattr(cause, "inner_exception", None) or cause
        name = type(inner).__name__  # not Ray's stand-in for an exception it could not pickle
        said = first_line(inner) if name.startswith("_") else f"{name}: {first_line(inner)}"
        return (f"the engine could not be compiled ({said}); "
                "engine.backend=eager runs the model without compiling it")  # fmt: skip
    return f"{type(cause).__name__}: {first_line(cause)}"


def _cause(err: BaseException) -> BaseException:
    """The exception a remote call raised (Ray wraps it in a RayTaskError whose `cause` it is)."""
    return getattr(err, "cause", None) or err


def first_line(err: BaseException) -> str:
    """The last non-empty line of an error's message (Ray's hold a traceback first)."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
