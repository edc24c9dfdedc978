"""Outputs under output.dir: audio files, the per-shard output manifest and stats, the job summary.

Files go through `batchvoc.storage.Store`: written to a temporary name and renamed on a local disk, one PUT
under the final key on an object store, so no partial file is ever visible. Audio is encoded in memory first,
so a failed write raises a `WriteFault` naming its real cause (no space, permission, ...), not libsndfile's
"System error". A shard is done when manifest/<shard>.parquet exists; it is written last.

Each audio file carries its row's output-manifest fields that its samples cannot tell (peak before PCM
conversion, clipped, mel_error, status, error) as JSON in its comment tag (RIFF INFO ICMT / a FLAC Vorbis
comment), in the same write as the audio: a resumed shard reuses a finished file with exactly the fields its
first run gave it, and a file without them (another program's, an older batchvoc's) is vocoded again.
"""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from batchvoc import wav
from batchvoc.errors import ConfigError, counted
from batchvoc.storage import PATH_FAULTS, Store, WriteFault

FORMATS = {"wav": ("WAV", ("PCM_16", "PCM_24", "FLOAT")), "flac": ("FLAC", ("PCM_16", "PCM_24"))}
OUTPUT_COLUMNS = ("id", "path", "sample_rate", "n_samples", "duration_s", "peak", "clipped", "mel_error", "status",
                  "error")  # fmt: skip
AUDIO_DIR = "audio"  # audio/<shard>/<id>.<wav|flac>, whatever the format
# pandas reads an int64 column holding nulls as float64: this schema metadata (as pyarrow writes it for a frame's
# "Int64" column) makes `clipped`, null where a row has no audio, read as pandas' nullable Int64
_CLIPPED = {"name": "clipped", "field_name": "clipped", "pandas_type": "int64", "numpy_type": "Int64", "metadata": None}
PANDAS_DTYPES = {"pandas": json.dumps({"index_columns": [], "column_indexes": [], "columns": [_CLIPPED]})}
RECORDED = ("peak", "clipped", "mel_error", "status", "error")  # fields an audio file carries in its comment tag
RECORD_KEY = "batchvoc_row"  # the comment's JSON object: {RECORD_KEY: {field: value}}
MARK_FIELD = "mel_mark"  # beside it: the mark of the .npy the row was vocoded from (manifest/mel_marks.py)
MAX_RECORD_BYTES = 2000  # the tag's UTF-8 bytes at most (a long reason is shortened): libsndfile 1.2 drops a WAV
# string over 2045 bytes


def check_format(fmt: str, subtype: str) -> None:
    """ConfigError for an output format or subtype batchvoc does not write."""
    if fmt not in FORMATS:
        raise ConfigError("output.format", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if subtype not in FORMATS[fmt][1]:
        raise ConfigError("output.subtype", f"{fmt} takes {', '.join(FORMATS[fmt][1])}, not {subtype!r}")


def as_store(out: str | Path | Store) -> Store:
    return out if isinstance(out, Store) else Store(out)


def check_writable(out: str | Path | Store) -> None:
    """ConfigError on output.dir unless we can create and write files there (local folder or URL)."""
    try:
        as_store(out).check_writable()
    except (OSError, ValueError, ImportError) as err:
        raise ConfigError("output.dir", str(err)) from err


def remove_partials(out: str | Path | Store, prefix: str = "", any_job: bool = True) -> int:
    """Delete temporary files below output.dir/`prefix` (any job's: only under the job lock); returns how many."""
    return as_store(out).remove_partials(prefix, any_job=any_job)


def done_shards(out: str | Path | Store) -> set[str]:
    """Names of the shards whose output manifest exists (one listing of manifest/)."""
    names = as_store(out).listing("manifest")
    return {n[: -len(".parquet")] for n in names if n.endswith(".parquet") and "/" not in n}


def finished_stats(out: str | Path | Store, names: set[str]) -> dict[str, dict[str, Any] | None]:
    """stats/<name>.json of each finished shard `names`, read once for a rerun's judgements (shards_with_failed_rows,
    shards_missing_outputs): name -> its payload, None where it is gone or cannot be read."""
    store = as_store(out)
    stats: dict[str, dict[str, Any] | None] = {}
    for name in names:
        try:
            payload = store.read_json(f"stats/{name}.json")
        except (OSError, ValueError):
            payload = None
        stats[name] = payload if isinstance(payload, dict) else None
    return stats


def shards_with_failed_rows(stats: dict[str, dict[str, Any] | None]) -> set[str]:
    """Those of the finished shards (their finished_stats) whose stats count failed rows, or cannot be read."""
    return {name for name, payload in stats.items() if payload is None or payload.get("rows_failed", 0)}


def shards_missing_outputs(out: str | Path | Store, stats: dict[str, dict[str, Any] | None], fmt: str = "wav"
                           ) -> dict[str, str]:  # fmt: skip
    """Those of the finished shards (their finished_stats) whose outputs were removed since they finished: name ->
    what is missing, its stats (stats/<name>.json gone or unreadable) or audio files (fewer `.<fmt>` files under
    audio/<name>/, below it too, than its stats say it wrote: rows_ok + rows_suspect, every such row has a file;
    other files, a viewer's .DS_Store, a note, do not count). One listing of audio/."""
    held: dict[str, int] = {}
    for rel in as_store(out).listing(AUDIO_DIR):
        if rel.endswith(f".{fmt}"):
            shard = rel.split("/", 1)[0]
            held[shard] = held.get(shard, 0) + 1
    missing = {}
    for name, payload in stats.items():
        try:
            written = None if payload is None else int(payload.get("rows_ok", 0)) + int(payload.get("rows_suspect", 0))
        except (TypeError, ValueError):
            written = None
        if written is None:
            missing[name] = f"its stats/{name}.json"
        elif held.get(name, 0) < written:
            missing[name] = counted(written - held.get(name, 0), "audio file")
    return missing


def write_json(out: str | Path | Store, rel: str, payload: dict[str, Any]) -> None:
    """Write `payload` as JSON under output.dir/`rel` (atomically); WriteFault on failure."""
    as_store(out).write_json(rel, payload)


class ShardSink:
    """Writes one shard's audio files, then its stats and output manifest, under output.dir.

    `fault` holds the first WriteFault of the shard (the shard is then not done); where it is permanent (no
    space, permission, ...) the rows after it need not be vocoded, since their writes would fail the same way.
    """

    def __init__(self, out: str | Path | Store, shard: str, sample_rate: int, fmt: str = "wav",
                 subtype: str = "PCM_16", columns: pa.Schema | None = None):  # fmt: skip
        """columns: the job's pass-through schema (batchvoc.outputs.passthrough_schema); None keeps the input's."""
        check_format(fmt, subtype)
        self.columns = columns
        self.store, self.shard, self.sample_rate = as_store(out), shard, sample_rate
        self.container, self.subtype, self.extension = FORMATS[fmt][0], subtype, fmt
        self.fault: WriteFault | None = None
        self._recalled: dict[str, dict[str, Any]] = {}  # fields read back by recall(), until reuse() takes them
        self._pcm16 = (self.container, subtype) == ("WAV", "PCM_16") and wav.same_as_libsndfile()
        self.mel_marks: dict[str, str | None] = {}  # id -> its .npy's mark as the shard began (run_shard sets it)

    @property
    def out_dir(self) -> str:
        return self.store.url

    def relpath(self, key: str) -> str:
        return f"{AUDIO_DIR}/{self.shard}/{key}.{self.extension}"

    def exists(self, key: str) -> bool:
        return self.store.exists(self.relpath(key))

    def written(self) -> set[str]:
        """Ids whose audio file an interrupted run of this shard already finished (one listing)."""
        suffix = f".{self.extension}"
        names = self.store.listing(f"{AUDIO_DIR}/{self.shard}")
        return {n[: -len(suffix)] for n in names if n.endswith(suffix)}

    def remove_partials(self) -> int:
        """Delete this job's temporary files of this shard (an earlier attempt's); returns how many."""
        return self.store.remove_partials(f"{AUDIO_DIR}/{self.shard}")

    def write(self, key: str, audio: np.ndarray, checks: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write audio [n_samples] float in [-1, 1] (clipped to it); returns the output-manifest fields for it.

        checks: the row's clipped, mel_error, status and error from the write stage (absent ones: clipped and
        mel_error None, status ok); the file carries them with its peak (see the module doc).
        Raises WriteFault (its reason names the cause and output.dir), kept in `fault`; one of the row's own path
        (`row_fault`) is not kept: its reason names the row's file, and the shard's other rows are written.
        """
        audio = np.asarray(audio, dtype=np.float32)
        encoded = self._encode_pcm16(key, audio, checks) if self._pcm16 else None
        if encoded is None:
            encoded = self._encode(key, np.clip(audio, -1.0, 1.0), checks)
        fields, data = encoded
        try:
            self.store.write_bytes(self.relpath(key), data)
        except WriteFault as fault:
            own = self.row_fault(key, fault)
            if own is not None:
                raise own from fault
            if self.fault is None or (fault.permanent and not self.fault.permanent):
                self.fault = fault
            raise
        return fields

    def row_fault(self, key: str, fault: WriteFault) -> WriteFault | None:
        """The fault as one of row `key`'s own, or None where it is the output folder's (the shard's).

        A fault of the path itself (storage.PATH_FAULTS: a name too long, a file where the row's path needs a
        folder or a folder where its file goes) while the shard's audio folder stands lies in the id's part of the
        path: it repeats for that row only. On an object store, keys have no folders: every fault is the shard's.
        """
        if not self.store.local or fault.errno not in PATH_FAULTS:
            return None
        if not os.path.isdir(self.store.path(f"{AUDIO_DIR}/{self.shard}")):
            return None
        kind, cause = PATH_FAULTS[fault.errno]
        reason = f"cannot write its audio file {self.relpath(key)}: {cause} [{errno.errorcode[fault.errno]}]"
        return WriteFault(reason, kind, True, fault.errno)

    def _encode(self, key: str, audio: np.ndarray, checks: dict[str, Any] | None) -> tuple[dict[str, Any], bytes]:
        """(the row's fields, its file's bytes) for audio [n] float32 in [-1, 1], through libsndfile."""
        fields = self._fields(key, audio.shape[0], float(np.abs(audio).max()) if audio.size else 0.0)
        fields.update(checks or {})
        buffer = io.BytesIO()
        with sf.SoundFile(buffer, "w", self.sample_rate, 1, self.subtype, format=self.container) as out:
            out.comment = record_of(fields, self.mel_marks.get(key))
            out.write(audio)
        return fields, buffer.getvalue()

    def _encode_pcm16(self, key: str, audio: np.ndarray, checks: dict[str, Any] | None
                      ) -> tuple[dict[str, Any], bytes] | None:  # fmt: skip
        """_encode's result for a 16-bit WAV, without libsndfile (batchvoc/wav.py: the same bytes), or None
        where that path does not apply (non-finite or no samples, a comment it does not lay out)."""
        if audio.ndim != 1 or audio.size == 0:
            return None
        peak = abs(max(float(audio.max()), -float(audio.min())))  # |clipped audio|'s max, without clipping it
        if not np.isfinite(peak):
            return None
        fields = self._fields(key, audio.shape[0], min(peak, 1.0))
        fields.update(checks or {})
        comment = record_of(fields, self.mel_marks.get(key))
        if not wav.fits(audio, comment):
            return None
        return fields, wav.wav_pcm16(audio, self.sample_rate, comment)

    def recall(self, key: str) -> bool:
        """Whether the finished audio file of `key` carries its row's fields (then `reuse` gives them without
        reading it again); False for a file without them, one that cannot be read, or one vocoded from a .npy
        rewritten since (its mark is not the file's mark now, `mel_marks`): vocode the row again."""
        try:
            fields = self._read_back(key)
        except (OSError, RuntimeError, ValueError):  # unreadable or not audio: written again
            return False
        if fields is None:
            return False
        made_from, now = fields.pop(MARK_FIELD, None), self.mel_marks.get(key)
        if made_from is not None and now is not None and made_from != now:
            return False
        self._recalled[key] = fields
        return True

    def reuse(self, key: str) -> dict[str, Any]:
        """The fields of an audio file an interrupted run already finished, as that run gave them (not written
        again). ValueError where the file does not carry them (`recall` said False)."""
        fields = self._recalled.pop(key, None) or self._read_back(key)
        if fields is None:
            raise ValueError(f"{self.relpath(key)} does not carry its row's fields (not written by batchvoc)")
        fields.pop(MARK_FIELD, None)
        return fields

    def _read_back(self, key: str) -> dict[str, Any] | None:
        """The fields the file of `key` carries, and its MARK_FIELD (None where it has none); None where it
        carries no fields."""
        with sf.SoundFile(io.BytesIO(self.store.read_bytes(self.relpath(key)))) as audio:
            recorded, frames = parse_record(audio.comment), audio.frames
            mark = parse_mark(audio.comment)
        if recorded is None:
            return None
        fields = self._fields(key, 0, 0.0)
        fields.update(n_samples=int(frames), duration_s=frames / self.sample_rate, **recorded)
        fields[MARK_FIELD] = mark
        return fields

    def _fields(self, key: str, n: int, peak: float) -> dict[str, Any]:
        """The output-manifest fields of a written file of n samples and this peak (clipped, mel_error: None)."""
        n = int(n)
        return dict(id=key, path=self.relpath(key), sample_rate=self.sample_rate, n_samples=n,
                    duration_s=n / self.sample_rate, peak=peak, clipped=None, mel_error=None, status="ok",
                    error=None)  # fmt: skip

    def failed(self, key: str, reason: str) -> dict[str, Any]:
        return dict(id=key, path=None, sample_rate=self.sample_rate, n_samples=0, duration_s=0.0, peak=None,
                    clipped=None, mel_error=None, status="error", error=reason)  # fmt: skip

    def finish(self, results: list[dict[str, Any]], passthrough: pa.Table, stats: dict[str, Any]) -> None:
        """Write stats/<shard>.json, then manifest/<shard>.parquet (the done marker) with one row per input row.

        Raises WriteFault where either cannot be written (the shard is then not done).
        """
        self.store.write_json(f"stats/{self.shard}.json", stats)
        table = output_table(results, passthrough, self.columns)
        self.store.write_with(f"manifest/{self.shard}.parquet", lambda buffer: pq.write_table(table, buffer))


def record_of(fields: dict[str, Any], mark: str | None = None) -> str:
    """The comment tag an audio file carries: JSON {RECORD_KEY: the RECORDED fields} (and MARK_FIELD: `mark`, the
    mark of the .npy the row was vocoded from, where it has one), at most MAX_RECORD_BYTES of UTF-8 (a longer
    reason is shortened, ending in "...")."""
    recorded = {name: fields.get(name) for name in RECORDED}
    tag: dict[str, Any] = {RECORD_KEY: recorded, **({MARK_FIELD: mark} if mark else {})}
    text = json.dumps(tag, ensure_ascii=False)
    while len(text.encode()) > MAX_RECORD_BYTES and recorded["error"]:
        reason = recorded["error"].removesuffix("...").encode()
        keep = max(len(reason) - (len(text.encode()) - MAX_RECORD_BYTES) - 3, 0)
        recorded["error"] = reason[:keep].decode(errors="ignore") + "..."
        text = json.dumps(tag, ensure_ascii=False)
    return text


def parse_mark(comment: str | None) -> str | None:
    """The MARK_FIELD of a comment tag written by record_of (None: none, or another program's tag)."""
    try:
        mark = json.loads(comment or "").get(MARK_FIELD)
    except (ValueError, AttributeError):
        return None
    return mark if isinstance(mark, str) else None


def parse_record(comment: str | None) -> dict[str, Any] | None:
    """The RECORDED fields of a comment tag written by record_of, or None (no tag, another program's)."""
    try:
        recorded = json.loads(comment or "").get(RECORD_KEY)
    except (ValueError, AttributeError):
        return None
    if not isinstance(recorded, dict) or set(recorded) != set(RECORDED) or recorded["status"] not in ("ok", "suspect"):
        return None
    return recorded


def output_table(results: list[dict[str, Any]], passthrough: pa.Table, columns: pa.Schema | None = None) -> pa.Table:
    """Output columns followed by the input's other columns (input_<name>, input_input_<name>, ... where they
    clash: passthrough_names), conformed to `columns` (the job's pass-through schema) when given: the same columns
    and types in every shard. `clipped` is an int64 column, null for rows without audio (pandas reads it as Int64:
    PANDAS_DTYPES)."""
    if columns is not None:
        from batchvoc.outputs import conform

        passthrough = conform(passthrough, columns)
    schema = pa.schema([("id", pa.string()), ("path", pa.string()), ("sample_rate", pa.int32()),
                        ("n_samples", pa.int64()), ("duration_s", pa.float64()), ("peak", pa.float32()),
                        ("clipped", pa.int64()), ("mel_error", pa.float32()), ("status", pa.string()),
                        ("error", pa.string())])  # fmt: skip
    table = pa.Table.from_pylist(results, schema=schema)
    names = [name for name in passthrough.column_names if name != "id"]
    for name, renamed in zip(names, passthrough_names(names), strict=True):
        table = table.append_column(renamed, passthrough.column(name))
    return table.replace_schema_metadata(PANDAS_DTYPES)


def passthrough_names(names: list[str]) -> list[str]:
    """The output manifest's names for the input's pass-through columns `names` (unique, without `id`): a name
    that clashes with an OUTPUT_COLUMNS one takes `input_` in front as many times as it takes to be free of
    OUTPUT_COLUMNS and of every input name (status, input_status -> input_input_status, input_status). A
    function of `names` alone, so every shard of a job (one pass-through schema) renames alike."""
    taken = set(OUTPUT_COLUMNS) | set(names)
    renamed = []
    for name in names:
        if name in OUTPUT_COLUMNS:
            while name in taken:
                name = f"input_{name}"
            taken.add(name)
        renamed.append(name)
    return renamed
