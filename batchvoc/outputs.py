"""Outputs other tools read: one schema for every shard of the output manifest (so `datasets.load_dataset(
"parquet", ...)`, pandas and pyarrow datasets open them together), and a lhotse RecordingSet of the ok audio.

    schema = passthrough_schema(files)           # driver, before any work: the input columns every shard carries
    table = conform(passthrough_table, schema)   # each shard: the same columns, in the same order, of one type
    write_lhotse(output_dir)                     # output.lhotse=true: recordings.jsonl.gz, after the shards
"""

from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchvoc import storage
from batchvoc.errors import ConfigError

RECORD = "job.json"  # the job's identity (runner/identity.py)
MANIFEST_DIR = "manifest"  # the output manifest's folder in output.dir: manifest/<shard>.parquet
# what a job writes into output.dir (output.overwrite=true deletes these; input.manifest may not lie in them)
OUTPUT_ENTRIES = ("audio", "wavs", MANIFEST_DIR, "stats", "summary.json", "report.html", "recordings.jsonl.gz", RECORD)

NOT_PASSED = ("mel", "id")  # input columns the output manifest does not carry as they are (id: as a string)
LHOTSE_FILE = "recordings.jsonl.gz"


def _plain(kind: pa.DataType) -> pa.DataType:
    """Dictionary-encoded columns (pandas categoricals) as their values' type."""
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def passthrough_schema(files: list) -> pa.Schema:
    """The input columns the output manifest carries, unified over every input file: a column missing from a file
    is null there, a column all null in one file takes its type from the others, ints widen (int32 + int64 ->
    int64, int + float -> float). Columns in first-seen order.

    Raises ConfigError (input.manifest) naming the column and two files where its types cannot be unified
    (string in one file, int64 in another).
    """
    fields: dict[str, tuple[pa.Field, str]] = {}
    for path in files:
        for field in storage.parquet_file(path).schema_arrow:
            if field.name in NOT_PASSED:
                continue
            field = pa.field(field.name, _plain(field.type))
            if field.name not in fields:
                fields[field.name] = (field, str(path))
                continue
            seen, where = fields[field.name]
            try:
                merged = pa.unify_schemas([pa.schema([seen]), pa.schema([field])], promote_options="permissive")
            except (pa.ArrowTypeError, pa.ArrowInvalid):
                raise ConfigError("input.manifest", f"column {field.name!r} is {seen.type} in {where} but "
                                  f"{field.type} in {path}: give it one type in every file") from None  # fmt: skip
            fields[field.name] = (merged.field(0), where)
    return pa.schema([field for field, _ in fields.values()])


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table`'s columns as `schema` says: in its order, cast to its types, null where the table lacks one (its
    `id`, when it has one, stays first as it is)."""
    columns, names = [], []
    if "id" in table.column_names and "id" not in schema.names:
        columns, names = [table.column("id")], ["id"]
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            if pa.types.is_dictionary(column.type):
                column = pc.cast(column, column.type.value_type)
            columns.append(column if column.type == field.type else pc.cast(column, field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, names=names + schema.names)


def check_lhotse() -> None:
    """ConfigError (output.lhotse) when lhotse is not installed."""
    try:
        import lhotse  # noqa: F401
    except ImportError as err:
        raise ConfigError("output.lhotse", f"needs lhotse: pip install 'batchvoc[lhotse]' ({err})") from err


def lhotse_recordings(out_dir: str) -> list[dict]:
    """A lhotse Recording (as its dict) for each status=ok row of output.dir's manifest/*.parquet, in shard order.

    Sources are absolute paths for a local output.dir, URLs for a URL one (lhotse reads those through
    smart_open).
    """
    from lhotse import AudioSource, Recording

    store = storage.Store(out_dir)
    recordings = []
    for name in sorted(n for n in store.listing("manifest") if n.endswith(".parquet") and "/" not in n):
        table = pq.read_table(io.BytesIO(store.read_bytes(f"manifest/{name}")),
                              columns=["id", "path", "sample_rate", "n_samples", "status"])  # fmt: skip
        for row in table.to_pylist():
            if row["status"] != "ok" or not row["path"]:
                continue
            rate, samples = int(row["sample_rate"]), int(row["n_samples"])
            source = store.path(row["path"]) if store.local else f"{store.url.rstrip('/')}/{row['path']}"
            recording = Recording(id=str(row["id"]), sampling_rate=rate, num_samples=samples,
                                  duration=samples / rate,
                                  sources=[AudioSource(type="file" if store.local else "url", channels=[0],
                                                       source=source)])  # fmt: skip
            recordings.append(recording.to_dict())
    return recordings


def write_lhotse(out_dir: str) -> str:
    """Write output.dir/recordings.jsonl.gz (lhotse's RecordingSet format) of the ok audio; returns where it went.

    Raises ConfigError (output.lhotse) when lhotse is not installed, storage.WriteFault when it cannot be written.
    """
    check_lhotse()
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lhotse_recordings(out_dir))
    store = storage.Store(out_dir)
    store.write_bytes(LHOTSE_FILE, gzip.compress(lines.encode("utf-8"), mtime=0))
    return store.path(LHOTSE_FILE) if store.local else f"{store.url.rstrip('/')}/{LHOTSE_FILE}"
