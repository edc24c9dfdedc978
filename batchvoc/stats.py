"""Typed stats: one shard's (stats/<shard>.json), totals over shards, and the job's summary (summary.json).

    stats = ShardStats(shard="m.rg0000-0003", rows=..., ...)      # the shard pipeline fills it
    write_json(path, stats.to_json());  ShardStats.from_json(json.loads(text))
    totals = Totals.merge(stats_of_every_shard)                    # sums; reasons counted together
    summary = JobSummary(rows_ok=totals.rows_ok, ..., this_run=RunSummary(...))  # the driver builds it
    store.write_json("summary.json", summary.to_json());  JobSummary.from_json(json.loads(text)).rows_ok

Seconds are wall-clock seconds; audio_seconds counts written audio (rows ok or suspect), an earlier run's files
that a redone shard reused included; audio_seconds_vocoded the part vocoded by the run that wrote the stats, and
x_realtime is that over wall seconds (reused rows are not the run's work). Keys a reader does not know are kept
in `extra` (stats written by a newer version still load).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

TOP_REASONS = 20  # reasons kept per shard (the rest counted under "other reasons")


def _json_of(item: Any) -> dict[str, Any]:
    """A stats dataclass as JSON: its fields by name (nested ones as dicts), its `extra` keys at the top level."""
    payload = asdict(item)
    payload.update(payload.pop("extra", None) or {})
    return payload


def _from_json(cls: type, payload: dict[str, Any]) -> Any:
    """cls from its JSON: the keys it has a field for; the others in its `extra` (dropped where it has none)."""
    names = {f.name for f in fields(cls)} - {"extra"}
    item = cls(**{k: v for k, v in payload.items() if k in names})
    if hasattr(item, "extra"):
        item.extra = {k: v for k, v in payload.items() if k not in names}
    return item


@dataclass
class Totals:
    """Row counts, frames, audio and stage times, summable over shards (and runs).

    rows_clipped: rows with at least one sample at or past the largest 16-bit PCM code (|x| >= 1 - 2**-15) before
    PCM conversion. rows_vocoded: rows sent to the vocoder (whatever became of them); rows_reused: rows whose
    audio file an earlier run of the shard finished, kept as it is (batchvoc/sink.py ShardSink.reuse); frames and
    audio_seconds_vocoded: those of the vocoded rows alone. reasons: error or suspect reason -> rows, the most
    common TOP_REASONS."""

    rows: int = 0
    rows_ok: int = 0
    rows_suspect: int = 0
    rows_failed: int = 0
    rows_clipped: int = 0
    rows_vocoded: int = 0
    rows_reused: int = 0
    frames: int = 0
    audio_seconds: float = 0.0
    audio_seconds_vocoded: float = 0.0
    read_s: float = 0.0
    check_s: float = 0.0
    vocode_s: float = 0.0
    write_s: float = 0.0
    wall_s: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    SUMMED: ClassVar[tuple[str, ...]] = (
        "rows", "rows_ok", "rows_suspect", "rows_failed", "rows_clipped", "rows_vocoded", "rows_reused", "frames",
        "audio_seconds", "audio_seconds_vocoded", "read_s", "check_s", "vocode_s", "write_s", "wall_s",
    )  # fmt: skip

    def add(self, other: Totals) -> Totals:
        """Add other's counts, times and reasons into self; returns self."""
        for name in self.SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.reasons = top_reasons(Counter(self.reasons) + Counter(other.reasons))
        return self

    @classmethod
    def merge(cls, items: Iterable[Totals]) -> Totals:
        """A new Totals summing items (ShardStats or Totals)."""
        total = cls()
        for item in items:
            total.add(item)
        return total

    def totals(self) -> Totals:
        """The summable part alone."""
        return Totals(**{name: getattr(self, name) for name in (*self.SUMMED, "reasons")})

    @property
    def rows_not_ok(self) -> int:
        return self.rows_suspect + self.rows_failed

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]):
        return _from_json(cls, payload)


@dataclass
class ShardStats(Totals):
    """stats/<shard>.json: the shard's Totals plus who ran it, how, and how fast.

    ready_s: seconds the actor took to get ready (model, engine); load_path: how the engine was obtained (e.g.
    "aoti package", "compiled"); packing_efficiency: kept frames / frames run by the engine for them (a batch
    shared with the next shard split between the two by their kept frames: runner/stages/vocode.py)."""

    shard: str = ""
    x_realtime: float = 0.0
    device: str = ""
    backend: str = ""
    precision: str = ""
    batch: int = 0
    chunk: int = 0
    context: int = 0
    packing_efficiency: float = 0.0
    actor: str = ""
    ready_s: float | None = None
    load_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def with_info(self, info: dict[str, Any]) -> ShardStats:
        """Set the fields `info` names (actor, device, backend, ...); other keys go to `extra`. Returns self."""
        names = {f.name for f in fields(self)} - set(Totals.SUMMED) - {"reasons", "extra", "shard"}
        for key, value in info.items():
            if key in names:
                setattr(self, key, value)
            else:
                self.extra[key] = value
        return self


@dataclass
class RunSummary:
    """summary.json's `this_run`: this run's own shards, rows, written audio and speed.

    rows_ok, rows_suspect, rows_failed, audio_seconds: what the shards this run finished hold, reused rows
    included; rows_not_run: the rows of this run's shards that did not finish (JobSummary.rows_not_run);
    rows_vocoded: the rows this run vocoded, rows_reused: those whose audio file an earlier run wrote (kept as it
    was); audio_seconds_vocoded: the audio this run vocoded, which x_realtime is over wall_seconds."""

    shards: int = 0
    rows_ok: int = 0
    rows_suspect: int = 0
    rows_failed: int = 0
    rows_not_run: int = 0
    rows_vocoded: int = 0
    rows_reused: int = 0
    audio_seconds: float = 0.0
    audio_seconds_vocoded: float = 0.0
    wall_seconds: float = 0.0
    x_realtime: float = 0.0


@dataclass
class JobSummary:
    """summary.json: the whole job's figures (earlier runs' shards included), this run's apart in `this_run`.

    rows_failed: rows that ran and failed (`status=error` in an output manifest); rows_not_run: the rows of shards
    that did not finish (shards_not_written: not dealt after an early stop or a write fault, or lost with their
    shard), which have no outcome and which any rerun runs; write_fault names a write's cause. Every row of the
    input is in one of rows_ok, rows_suspect, rows_failed, rows_not_run.
    wall_seconds: the job's start to its last shard's end (a local Ray's shutdown runs on, beside the summary);
    startup_s: process start to the first audio written (None when nothing was vocoded); x_realtime: this run's
    audio_seconds_vocoded / wall_seconds; actors_ready: per actor {actor, ready_s, load_path, device, pid};
    top_failures: [{status, rows, example_id, reason, alike}], the most common kinds of reason (runner/failures.TOP);
    top_failures_left_out, top_failures_left_out_rows: the kinds of reason past those, and their rows; timeline:
    seconds from process start to each step; started_at: epoch seconds.
    Keys a reader does not know are kept in `extra`."""

    rows_ok: int = 0
    rows_suspect: int = 0
    rows_clipped: int = 0
    rows_failed: int = 0
    rows_not_run: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    startup_s: float | None = None
    x_realtime: float = 0.0
    actors: int = 0
    actors_ready: list[dict[str, Any]] = field(default_factory=list)
    backend: str = ""
    precision: str = ""
    devices: list[str] = field(default_factory=list)
    shards: int = 0
    shards_skipped: int = 0
    shards_failed: list[str] = field(default_factory=list)
    stopped_early: str | None = None
    shards_not_written: list[str] = field(default_factory=list)
    write_fault: str | None = None
    top_failures: list[dict[str, Any]] = field(default_factory=list)
    top_failures_left_out: int = 0
    top_failures_left_out_rows: int = 0
    this_run: RunSummary = field(default_factory=RunSummary)
    config: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    timeline: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """1: some shards could not finish, or the job stopped early; 2: some rows failed or are suspect; else 0."""
        if self.shards_failed or self.shards_not_written or self.rows_not_run or self.stopped_early:
            return 1
        return 2 if self.rows_failed or self.rows_suspect else 0

    def to_json(self) -> dict[str, Any]:
        """summary.json's payload: every field by its name (`this_run` nested), then the `extra` keys."""
        return _json_of(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> JobSummary:
        """A summary.json's summary; one written before rows_not_run (whose rows_failed, its own and this_run's,
        counted the rows not run as failed, under rows_not_written) is read as the current version writes it."""
        payload, run = dict(payload), dict(payload.get("this_run") or {})
        if "rows_not_written" in payload and "rows_not_run" not in payload:
            not_run = payload.pop("rows_not_written") or 0
            payload["rows_not_run"] = not_run
            payload["rows_failed"] = max(payload.get("rows_failed", 0) - not_run, 0)
            if run and "rows_not_run" not in run:  # the shards not written were all the last run's
                run["rows_not_run"] = not_run
                run["rows_failed"] = max(run.get("rows_failed", 0) - not_run, 0)
        summary = _from_json(cls, {k: v for k, v in payload.items() if k != "this_run"})
        summary.this_run = _from_json(RunSummary, run)
        return summary


def vocoded_seconds(stats: dict[str, Any]) -> float:
    """A shard's audio seconds vocoded by the run that wrote its stats/<shard>.json payload `stats`: its
    audio_seconds_vocoded, or, in stats written before that key (and rows_reused) existed, all of its audio (no
    row was reused then)."""
    return float(stats.get("audio_seconds_vocoded", stats.get("audio_seconds", 0.0)))


def reused_seconds(stats: dict[str, Any]) -> float:
    """A shard's audio seconds reused from an earlier run's files (output.retry_failed): written, not vocoded."""
    return max(float(stats.get("audio_seconds", 0.0)) - vocoded_seconds(stats), 0.0)


def top_reasons(counts: Counter, keep: int = TOP_REASONS) -> dict[str, int]:
    """The `keep` most common reasons (most common first), the rest summed under "other reasons"."""
    common = counts.most_common(keep)
    rest = sum(counts.values()) - sum(n for _, n in common)
    out = dict(common)
    if rest:
        out["other reasons"] = out.get("other reasons", 0) + rest
    return out
