"""report.html: one self-contained page (inline CSS, PNG pictures inline as base64, no scripts, no links out)."""

from __future__ import annotations

import datetime as dt
import html
import logging
import math
from collections import defaultdict
from typing import Any

from batchvoc.errors import counted, duration
from batchvoc.report import data as jobdata
from batchvoc.report import files, plots
from batchvoc.runner.failures import example_note
from batchvoc.stats import JobSummary, reused_seconds, vocoded_seconds

log = logging.getLogger(__name__)
WORST_ROWS = 6
CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;max-width:1120px;margin:24px auto;
padding:0 20px;color:#222;line-height:1.45;font-size:14px}
h1{font-size:22px;margin-bottom:2px}h2{font-size:17px;margin-top:34px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin-top:0}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:6px 12px;flex:1 1 92px}
.card b{display:block;font-size:19px}.card span{color:#666;font-size:12px}
.ok b{color:#1a7f37}.warn b{color:#9a6700}.bad b{color:#c62828}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border-bottom:1px solid #eee;padding:3px 10px;
text-align:left;vertical-align:top}th{background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;display:block;margin:8px 0}h4{margin:18px 0 0;font-size:14px}
.note{background:#fff8e1;border-left:3px solid #e0b000;
padding:6px 10px;margin:8px 0}.muted{color:#777}code{background:#f3f3f3;padding:0 3px;border-radius:3px}
"""


def build(out: str, summary: JobSummary | None = None) -> str:
    """The report page of the job in output.dir `out` (summary: the job's summary when not yet on disk)."""
    job = jobdata.load(out, summary)
    parts = [_header(job), *(f'<p class="note">{html.escape(n)}</p>' for n in job.notes)]
    for section in (_timeline, _startup, _shards, _round_trip, _failures, _settings):
        try:
            parts.append(section(job))
        except Exception as err:  # noqa: BLE001 - one section's trouble must not cost the whole report
            log.warning("report: section %s not drawn: %s", section.__name__.strip("_"), err)
            log.debug("report: section %s", section.__name__, exc_info=True)
            parts.append(f'<p class="note">This section could not be drawn: {html.escape(str(err))}</p>')
    title = f"batchvoc report: {job.setting('model.preset', '')} {out}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f'<body>\n{"".join(parts)}\n</body></html>\n')  # fmt: skip


def write_report(out: str, summary: JobSummary | None = None) -> str:
    """Render output.dir's report.html; returns its path."""
    return files.write_text(str(out), "report.html", build(str(out), summary))


def _img(b64: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{b64}" alt="{html.escape(alt)}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f'<td class="n">{v:,.2f}</td>'
        if isinstance(v, int):
            return f'<td class="n">{v:,}</td>'
        return f"<td>{html.escape(str(v))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _header(job: jobdata.JobData) -> str:
    s = job.summary
    clipped = sum(1 for v in job.column("clipped") if v)
    devices = ", ".join(s.devices or sorted({st.get("device", "?") for st in job.stats}))
    # a rerun with nothing to do keeps the figures of the last run that did work (stats.JobSummary): say whose
    idle = s.this_run is not None and not s.this_run.shards and s.shards_skipped == s.shards > 0
    speed = "real time (the run that vocoded it)" if idle else "real time (audio vocoded this run)"
    cards = [("ok", f"{s.rows_ok:,}", "rows ok"), ("warn" if s.rows_suspect else "", f"{s.rows_suspect:,}",
              "rows suspect"), ("bad" if s.rows_failed else "", f"{s.rows_failed:,}", "rows failed"),
             ("", duration(s.audio_seconds), "audio written"), ("", duration(s.wall_seconds or None), "wall time"),
             ("", f"{s.x_realtime:,.1f}x" if s.x_realtime else "–", speed),
             ("", duration(_startup_s(job)), "start-up"),
             ("", str(s.actors or "–"), counted(s.actors, "actor").split(" ", 1)[1])]  # fmt: skip
    if s.rows_not_run:  # rows of shards that did not finish: no outcome, not failed; any rerun runs them
        cards.insert(3, ("warn", f"{s.rows_not_run:,}", "rows not run"))
    if job.column("clipped"):
        cards.append(("warn" if clipped else "", f"{clipped:,}", "rows clipped"))
    html_cards = "".join(f'<div class="card {c}"><b>{v}</b><span>{html.escape(k)}</span></div>' for c, v, k in cards)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    what = " · ".join(html.escape(str(x)) for x in (job.setting("model.preset", "?"), s.backend or "?",
                                                    s.precision or "?", devices or "?"))  # fmt: skip
    resumed = ""
    if idle:
        done = "its 1 shard was" if s.shards == 1 else f"all {s.shards} shards were"
        resumed = (f" This run had nothing to do: {done} done by an earlier run; the wall time, speed, start-up and "
                   "actors are those of the last run that vocoded.")  # fmt: skip
    elif s.shards_skipped:
        resumed = f" {s.shards_skipped} of {counted(s.shards, 'shard')} done by an earlier run."
    reused = s.this_run.rows_reused if s.this_run is not None else 0
    if reused:
        rows = counted(reused, "row") + "'"  # a shard redone (interrupted, outputs lost, output.retry_failed)
        resumed += (f" {rows} audio was reused from an earlier run's files in the shards this run redid: the speeds "
                    "are over the audio vocoded, reused audio is not counted.")  # fmt: skip
    if s.stopped_early:
        resumed += f" The job stopped early: {s.stopped_early}."
    if s.shards_failed:
        resumed += f" {len(s.shards_failed)} shards could not finish: {', '.join(map(str, s.shards_failed[:10]))}."
    if s.rows_not_run:
        resumed += (f" {s.rows_not_run:,} rows were not run ({len(s.shards_not_written):,} shards not finished): "
                    "they are not counted as failed, and a rerun runs them.")  # fmt: skip
    return (f"<h1>batchvoc job report</h1><p class='sub'>{html.escape(str(job.out))}<br>{what}<br>"
            f"<span class='muted'>rendered {when}.{html.escape(resumed)}</span></p>"
            f"<div class='cards'>{html_cards}</div>")  # fmt: skip


def busy_seconds(stats: list[dict[str, Any]]) -> float:
    """Seconds an actor had at least one shard running: the union of its shards' [started_at, + wall_s] (it runs
    two at once, so their walls overlap); without start times, their walls summed."""
    if any(s.get("started_at") is None for s in stats):
        return sum(s["wall_s"] for s in stats)
    busy, end = 0.0, -math.inf
    for start, stop in sorted((s["started_at"], s["started_at"] + s["wall_s"]) for s in stats):
        busy += max(stop - max(start, end), 0.0)
        end = max(end, stop)
    return busy


def _spans(job: jobdata.JobData) -> tuple[list[dict[str, Any]], dict[str, tuple[float, float, float]], str]:
    """Shard spans, each actor's start-up (job start, engine build start, first shard start) in seconds since the
    job started, and a caption saying how they were got."""
    stats = [s for s in job.stats if s.get("actor")]
    began = job.summary.started_at
    timed = [s for s in stats if s.get("started_at") is not None]
    caption = ""
    if timed:
        earlier = [s for s in timed if began is not None and s["started_at"] < began]
        timed = [s for s in timed if s not in earlier]
        if earlier and timed:
            caption = f"{len(earlier)} shards done by earlier runs of this job are not drawn. "
        elif earlier:  # this run had nothing left to do: show the runs that did the work
            caption = (f"This run had nothing left to do; drawn: the {len(earlier)} shards of earlier runs, in "
                       "seconds since the first of them started. ")  # fmt: skip
            timed, began = earlier, None
        t0 = began if began is not None else min(s["started_at"] - _ready(s) for s in timed)
        spans = [dict(actor=s["actor"], shard=s["shard"], start=s["started_at"] - t0,
                      end=s["started_at"] - t0 + s["wall_s"], audio=vocoded_seconds(s), reused=reused_seconds(s))
                 for s in timed]  # fmt: skip
    else:  # stats without start times: each actor's shards one after the other, after its start-up
        caption = "Stats carry no start times: each actor's shards are drawn back to back (approximate). "
        spans, clock = [], defaultdict(float)
        for s in sorted(stats, key=lambda s: s["shard"]):
            start = clock[s["actor"]] or _ready(s)
            clock[s["actor"]] = start + s["wall_s"]
            spans.append(dict(actor=s["actor"], shard=s["shard"], start=start, end=start + s["wall_s"],
                              audio=vocoded_seconds(s), reused=reused_seconds(s)))  # fmt: skip
    startups = {}
    for actor in {s["actor"] for s in spans}:
        first = min((s for s in spans if s["actor"] == actor), key=lambda s: s["start"])
        ready = _ready(next(s for s in stats if s["actor"] == actor))
        startups[actor] = (0.0, max(first["start"] - ready, 0.0), first["start"])
    return spans, startups, caption


def _startup_s(job: jobdata.JobData) -> float | None:
    """The summary's startup_s, else from the job's start to its first shard's start (None when unknown)."""
    if job.summary.startup_s is not None:
        return float(job.summary.startup_s)
    return _first_shard_s(job)


def _first_shard_s(job: jobdata.JobData) -> float | None:
    """Seconds from the job's start to this run's first shard's start (None when unknown)."""
    began = job.summary.started_at
    starts = [s["started_at"] for s in job.stats if s.get("started_at") is not None]
    starts = [t for t in starts if began is not None and t >= began]
    return min(starts) - began if starts else None


def _speed(vocoded: float, reused: float, seconds: float) -> str:
    """x real time over the audio vocoded; where nothing was vocoded but audio was reused, that it was."""
    if vocoded <= 0 and reused > 0:
        return "reused"
    return f"{vocoded / seconds:,.1f}x" if seconds > 0 else "–"


def _audio(vocoded: float, reused: float) -> str:
    return duration(vocoded) + (f" (+{duration(reused)} reused)" if reused > 0 else "")


def _ready(stats: dict[str, Any]) -> float:
    return float(stats.get("ready_s") or stats.get("startup_s") or 0.0)


def _timeline(job: jobdata.JobData) -> str:
    spans, startups, caption = _spans(job)
    if not spans:
        return f"<h2>Throughput</h2><p class='muted'>{html.escape(caption)}No shard ran in this run.</p>"
    total, reused = sum(s["audio"] for s in spans), sum(s["reused"] for s in spans)
    busy = max(s["end"] for s in spans) - min(s["start"] for s in spans)
    actors = len({s["actor"] for s in spans})
    speed = _speed(total, reused, busy)
    speed = (
        "no audio vocoded: all of it reused"
        if speed == "reused"
        else f"{speed} real time over the audio vocoded, from the first shard's start to the last one's end"
    )
    also = f" ({duration(reused)} more reused from an earlier run's files)" if reused > 0 else ""
    return (f"<h2>Throughput</h2><p>{len(spans)} shards, {duration(total)} of audio vocoded{also} on {actors} "
            f"actor{'s' if actors != 1 else ''}; {speed}."
            f" <span class='muted'>{html.escape(caption)}</span></p>"
            + _img(plots.throughput(spans), "audio vocoded over time per actor")
            + _img(plots.timeline(spans, startups), "timeline of start-up and shards per actor"))  # fmt: skip


def _startup(job: jobdata.JobData) -> str:
    rows, seen = [], set()
    for s in sorted(job.stats, key=lambda s: str(s.get("actor"))):
        actor = s.get("actor")
        if actor in seen or actor is None:
            continue
        seen.add(actor)
        mine = [x for x in job.stats if x.get("actor") == actor]
        busy = busy_seconds(mine)
        # the speed is over the audio the actor vocoded; reused audio is named as such
        vocoded, reused = sum(vocoded_seconds(x) for x in mine), sum(reused_seconds(x) for x in mine)
        rows.append([actor, s.get("device", "?"), f"{s.get('backend', '?')} {s.get('precision', '')}",
                     duration(_ready(s)) if _ready(s) else "–", len(mine), _audio(vocoded, reused),
                     duration(busy), _speed(vocoded, reused, busy)])  # fmt: skip
    head = "<h2>Start-up and actors</h2>"
    startup, first = job.summary.startup_s, _first_shard_s(job)
    said = []
    if startup is not None:
        said.append(f"{duration(startup)} from the process start until the first audio was vocoded")
    if first is not None:
        said.append(f"the first shard began {duration(first)} after the job started")
    text = f"<p>Start-up: {'; '.join(said)}.</p>" if said else ""
    if not rows:
        return head + text + "<p class='muted'>No actor ran in this run.</p>"
    return head + text + _table(["actor", "device", "engine", "ready in", "shards", "audio vocoded", "busy",
                                 "speed (vocoded)"], rows)  # fmt: skip


def _shards(job: jobdata.JobData) -> str:
    stats = [s for s in job.stats if "wall_s" in s]
    if not stats:
        return ""
    slow = sorted(stats, key=lambda s: -s["wall_s"])[:8]
    rows = [[s["shard"], s.get("actor", "?"), s.get("rows", 0), _audio(vocoded_seconds(s), reused_seconds(s)),
             s.get("read_s", 0.0), s.get("vocode_s", 0.0), s.get("write_s", 0.0), s["wall_s"],
             _speed(vocoded_seconds(s), reused_seconds(s), s["wall_s"])]
            for s in slow]  # fmt: skip
    return ("<h2>Shard timing</h2>" + _img(plots.shard_timing(stats), "read, vocode and write seconds per shard")
            + "<p>The slowest shards (seconds):</p>"
            + _table(["shard", "actor", "rows", "audio vocoded", "read", "vocode", "write", "wall", "speed (vocoded)"],
                     rows))  # fmt: skip


def _round_trip(job: jobdata.JobData) -> str:
    head = "<h2>Round-trip check (mel error)</h2>"
    if "mel_error" not in job.rows.column_names:
        return head + (
            "<p class='muted'>This job's output manifest has no <code>mel_error</code> column: the "
            "round-trip check did not run.</p>"
        )
    pairs = [(e, st) for e, st in zip(job.column("mel_error"), job.column("status"), strict=True) if e is not None]
    if not pairs:
        return head + "<p class='muted'>No row was checked.</p>"
    ok = [e for e, st in pairs if st == "ok"]
    suspect = [e for e, st in pairs if st == "suspect"]
    threshold = job.setting("check.max_mel_error")
    parts = [head, _img(plots.mel_error_histogram(ok, suspect, threshold), "distribution of the mel error")]
    worst = jobdata.worst_rows(job, WORST_ROWS)
    if worst:
        parts.append(f"<p>The {len(worst)} rows with the largest mel error: the input mel beside the mel of the "
                     "audio written for it (the preset's own front end).</p>")  # fmt: skip
        parts += _worst_pictures(job, worst)
    return "".join(parts)


def _worst_pictures(job: jobdata.JobData, worst: list[dict[str, Any]]) -> list[str]:
    from batchvoc.manifest.conventions import MelChecks
    from batchvoc.models.mel import log_mel
    from batchvoc.models.presets import get_preset

    preset = get_preset(job.setting("model.preset"))
    # the input mels as the job read them: its reader, its n_mels, its input.mel_scale (no convention checks)
    checks = MelChecks(preset.n_mels, scale=job.setting("input.mel_scale") or "ln", mode="off")
    inputs = jobdata.input_mels(job.setting("input.manifest"), [str(r["id"]) for r in worst], checks, job.out)
    pictures = []
    for row in worst:
        head = (f"<h4>{html.escape(str(row['id']))}: mel error {row['mel_error']:.3f} ({row['status']})"
                f" <span class='muted'>{html.escape(str(row['path']))}</span></h4>")  # fmt: skip
        try:
            audio, _ = files.read_audio(job.out, row["path"])
        except (OSError, RuntimeError) as err:  # removed since the job wrote it (a rerun makes it again)
            pictures.append(head + f'<p class="note">Its audio file cannot be read: {html.escape(str(err))}</p>')
            continue
        mel_out = log_mel(audio, preset.front_end).numpy()
        picture = plots.mel_pair(inputs.get(str(row["id"])), mel_out, preset.silence)
        pictures.append(head + _img(picture, f"input and output mel of {row['id']}"))
    return pictures


def _failures(job: jobdata.JobData) -> str:
    """Failed and suspect rows, each counted by kind of reason: a bar chart and a table of reasons with ids."""
    parts = ["<h2>Failed and suspect rows</h2>"]
    tally = jobdata.failure_tally(job)
    # suspect: a mel that looks like another convention (checked before vocoding) or audio that does not match it
    titles = (("error", "Failed rows (not written)"),
              ("suspect", "Suspect rows (written, their mel or its audio in doubt)"))
    for status, title in titles:
        kinds = tally.kinds(status)
        if not kinds:
            continue
        parts.append(f"<h3>{title}: {sum(k['rows'] for k in kinds):,}</h3>")
        parts.append(_img(plots.failure_bars([(k["kind"], k["rows"]) for k in kinds], f"{title} by reason"), title))
        parts.append(_table(["rows", "reason (one example)", "ids (up to 5)"],
                            [[k["rows"], _reason(k), ", ".join(k["ids"])] for k in kinds]))  # fmt: skip
    if len(parts) == 1:
        parts.append("<p>Every row was written and passed its checks.</p>")
    return "".join(parts)


def _reason(kind: dict[str, Any]) -> str:
    """A kind's example reason; where the other rows' numbers differ from it, whose numbers they are, worded as
    the console words it (the fix the reason names may not hold for the other rows)."""
    if kind["alike"]:
        return kind["reason"]
    return f"{kind['reason']} ({example_note(kind)})"


def _flat(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        return [item for k, v in node.items() for item in _flat(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), node)]


def _settings(job: jobdata.JobData) -> str:
    config = job.config
    if not config:
        return "<h2>Settings</h2><p class='muted'>summary.json holds no resolved config.</p>"
    rows = [[key, "" if value is None else str(value)] for key, value in _flat(config)]
    return "<h2>Settings</h2><p>The job's resolved configuration:</p>" + _table(["key", "value"], rows)
