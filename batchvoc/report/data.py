"""What the report shows, gathered from a job's output.dir: summary, shard stats, the output manifest's rows,
failure reasons grouped by kind, and the mels (input and output) of the worst rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchvoc.manifest.conventions import MelChecks
from batchvoc.report import files
from batchvoc.runner.failures import FailureTally
from batchvoc.stats import JobSummary

log = logging.getLogger(__name__)
ROW_COLUMNS = ["id", "path", "status", "error", "mel_error", "duration_s", "peak", "clipped"]


@dataclass
class JobData:
    """One job's outputs, as the report needs them. rows: the output manifest's ROW_COLUMNS it has, plus `shard`."""

    out: str
    summary: JobSummary
    stats: list[dict[str, Any]]
    rows: pa.Table
    notes: list[str] = field(default_factory=list)  # what is missing, said on the page

    @property
    def config(self) -> dict[str, Any]:
        return self.summary.config

    def setting(self, dotted: str, default: Any = None) -> Any:
        """A value of the resolved config by its key (`model.preset`), or default."""
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def column(self, name: str) -> list:
        return self.rows.column(name).to_pylist() if name in self.rows.column_names else []

    def count(self, status: str) -> int:
        return self.column("status").count(status)


def load(out: str, summary: JobSummary | None = None) -> JobData:
    """Read output.dir's summary.json (unless given), stats/*.json and manifest/*.parquet; without a summary.json
    (the job did not finish) the summary's row counts and audio come from the shards that did."""
    notes = []
    manifests = files.list_files(out, "manifest", ".parquet")
    payload = files.read_json(out, "summary.json") if summary is None else None
    if summary is None and not manifests and payload is None:
        raise FileNotFoundError(f"{out} holds no batchvoc job output (no summary.json, no manifest/*.parquet)")
    if summary is None and payload is not None:
        summary = JobSummary.from_json(payload)
    elif summary is None:
        notes.append("summary.json is missing: the job did not finish; showing the shards that did.")
    stats = [s for s in (files.read_json(out, rel) for rel in files.list_files(out, "stats", ".json")) if s]
    tables = []
    for rel in manifests:
        table = files.read_table(out, rel, ROW_COLUMNS)
        shard = Path(rel).name[: -len(".parquet")]
        tables.append(_normalised(table).append_column("shard", pa.array([shard] * table.num_rows, pa.string())))
    rows = (
        pa.concat_tables(tables, promote_options="default")
        if tables
        else pa.table({"shard": pa.array([], pa.string())})
    )
    job = JobData(out, summary if summary is not None else JobSummary(), stats, rows, notes)
    if summary is None:
        job.summary = _summary_of(job)
    return job


def _summary_of(job: JobData) -> JobSummary:
    """A summary from the shards that are done: rows by status and the audio written."""
    audio = sum(s.get("audio_seconds", 0.0) for s in job.stats)
    return JobSummary(rows_ok=job.count("ok"), rows_suspect=job.count("suspect"), rows_failed=job.count("error"),
                      audio_seconds=audio)  # fmt: skip


def _normalised(table: pa.Table) -> pa.Table:
    """Columns cast to one type each, so shards written by different versions concatenate."""
    text, real = pa.string(), pa.float64()
    types = {"id": text, "path": text, "status": text, "error": text, "mel_error": real, "duration_s": real,
             "peak": real, "clipped": pa.int64()}  # fmt: skip
    for i, name in enumerate(table.column_names):
        if name in types and table.schema.field(name).type != types[name]:
            table = table.set_column(i, name, pc.cast(table.column(name), types[name]))
    return table


def failure_tally(data: JobData) -> FailureTally:
    """The job's failed and suspect rows grouped by kind of reason, by the tally the runner's console and
    summary.json use (runner/failures.py), so the report counts and words them alike; `kinds(status)` gives a
    table's rows. Read a record batch at a time: a job's rows need not all become dicts at once."""
    tally = FailureTally()
    names = [name for name in ("id", "status", "error") if name in data.rows.column_names]
    if "status" not in names:
        return tally  # no output manifest read: nothing to group
    for batch in data.rows.select(names).to_batches():
        tally.add(batch.to_pylist())
    return tally


def worst_rows(data: JobData, count: int) -> list[dict[str, Any]]:
    """The `count` written rows with the largest mel_error (largest first); [] when there is no mel_error."""
    if "mel_error" not in data.rows.column_names or "path" not in data.rows.column_names:
        return []
    rows = data.rows
    error = rows.column("mel_error")
    keep = pc.and_(pc.is_valid(rows.column("path")), pc.and_(pc.is_valid(error), pc.is_finite(error)))
    written = rows.filter(pc.fill_null(keep, False))
    if written.num_rows == 0:
        return []
    top = pc.select_k_unstable(written, k=min(count, written.num_rows), sort_keys=[("mel_error", "descending")])
    return sorted(written.take(top).to_pylist(), key=lambda r: -r["mel_error"])


def input_mels(manifest: str | None, ids: list[str], checks: MelChecks | int, output_dir: str | None = None
               ) -> dict[str, np.ndarray]:  # fmt: skip
    """The input mels [n_mels, T] of `ids` as the job read them, found in the job's input manifest (those it
    cannot find or read are left out, with a warning). `checks`: the job's MelChecks (an int: its n_mels, mels
    taken as natural-log); `output_dir`: the job's output.dir, whose files the job did not read as input either.
    Every manifest form the job takes is read by the job's own reader (batchvoc.manifest.rows.table_rows)."""
    if not manifest or not ids:
        return {}
    from batchvoc.manifest import find_manifest_files

    wanted, found = set(ids), {}
    try:
        paths = find_manifest_files(manifest, output_dir)
    except Exception as err:  # noqa: BLE001 - the report says what it could not show, it does not fail
        log.warning("report: cannot read the input manifest %s: %s", manifest, err)
        return {}
    for path in paths:
        try:
            rows = _mels_in(path, wanted - set(found), checks)
        except Exception as err:  # noqa: BLE001 - one unreadable file leaves its mels out, the report goes on
            log.warning("report: cannot read the input mels in %s: %s", path, err)
            continue
        for key, mel in rows:
            found[key] = mel
        if len(found) == len(wanted):
            break
    return found


def _mels_in(path: str, wanted: set[str], checks: MelChecks | int) -> list[tuple[str, np.ndarray]]:
    from batchvoc import storage
    from batchvoc.manifest.rows import table_rows

    fs, inner = storage.filesystem(path)
    footer = storage.parquet_file(path)
    if footer.metadata.num_rows == 0:  # an empty part, which the job skipped too (it may lack any column)
        return []
    schema = footer.schema_arrow
    id_type = schema.field("id").type
    values = [int(k) for k in wanted if k.lstrip("-").isdigit()] if pa.types.is_integer(id_type) else list(wanted)
    if not values:
        return []
    columns = [c for c in ("id", "mel", "n_frames", "mel_path") if c in schema.names]
    table = pq.read_table(inner, columns=columns, filters=[("id", "in", values)], filesystem=fs)
    found = []
    for row in table_rows(table, path, checks):
        if row.mel is None:
            log.warning("report: cannot read the input mel of %s: %s", row.id, row.error)
        else:
            found.append((row.id, row.mel))
    return found
