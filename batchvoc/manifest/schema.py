"""The input manifest's schema: which files, which columns, checked before any work."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batchvoc import storage
from batchvoc.errors import ConfigError, RowError, counted, first_line

log = logging.getLogger(__name__)

KEY = "input.manifest"
MEL_COLUMNS = ("mel", "n_frames", "n_mels", "mel_path")
NUMBER_COLUMNS = ("n_frames", "n_mels", "sample_rate", "hop_length")
JOBS_NAMED = 5  # other jobs' output folders a listing's left_out names (then "and N more")


@dataclass(frozen=True)
class ManifestFiles:
    """list_manifest_files's answer: the files (`paths`), and `left_out`: one sentence naming the other batchvoc
    jobs' output folders whose output manifests the listing left out, with how many files (None where it left none
    out). The driver logs it once per job, as a warning."""

    paths: list[str]
    left_out: str | None = None


def find_manifest_files(spec: str | Path | None, output_dir: str | Path | None = None) -> list[str]:
    """list_manifest_files's files alone, for callers that do not say what the listing left out."""
    return list_manifest_files(spec, output_dir).paths


def _absent(fs, path: str) -> str:
    """What a plain path with nothing there says: on an object store, whether its bucket is missing (a typo in it
    reads the same as one in the key otherwise)."""
    bucket = path.split("/")[0]
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if not protocols & {"s3", "s3a", "gs", "gcs", "abfs", "az"} or not bucket:  # hf:// paths start with no bucket
        return ": no such file or folder"
    try:
        there = fs.exists(bucket)
    except Exception:  # noqa: BLE001 - a note only: the refusal stands without it
        there = True
    return ": no such file or folder" if there else f": no bucket {bucket!r} (or none these credentials can see)"


def list_manifest_files(spec: str | Path | None, output_dir: str | Path | None = None, preset: str = ""
                        ) -> ManifestFiles:  # fmt: skip
    """The Parquet files named by input.manifest: one file, a folder of *.parquet, or a glob; sorted.

    `spec` is a local path or an fsspec URL (s3://bucket/mels/, gs://..., hf://datasets/...); its `paths` are
    absolute local paths, or URLs. Empty Parquet files (no rows) are skipped with a warning.

    `output_dir` (the job's output.dir): what the job writes is never its input, so a first run and its reruns
    list the same files (`outside_output`). ConfigError where input.manifest lies in what the job writes.

    Nor are other batchvoc jobs' output manifests (`manifest/*.parquet` of a folder that holds `job.json`) listed
    from a folder or a glob (`outside_other_jobs`), unless input.manifest names that manifest/ folder or lies in it;
    the result's `left_out` says which were left out. `preset` (the job's model.preset) fills in the command a
    folder of audio files without a manifest is told to run.
    """
    if not spec:
        raise ConfigError(KEY, "no manifest given; set input.manifest=PATH (a Parquet file, a folder or a glob)")
    from batchvoc.outputs import RECORD

    listed: list[str] | None = None  # a folder's whole listing (every file under it)
    absent = False  # a plain path (no glob) with nothing there
    try:
        fs, path = storage.filesystem(spec)
        if fs.isfile(path):
            found, single = [path], True
        elif fs.isdir(path):
            listed = fs.find(path)
            found, single = [p for p in listed if p.endswith(".parquet")], False
        else:
            found, single = [p for p in fs.glob(path) if fs.isfile(p)], False
            absent = not found and not any(c in path for c in "*?[") and not fs.exists(path)
    except Exception as err:
        if (refusal := _cannot_list(spec, err)) is None:
            raise
        raise refusal from err
    files = sorted(storage.to_url(fs, p) for p in found if storage.TEMP_MARK not in p)
    if output_dir:
        files = outside_output(spec, files, output_dir)
    left: dict[str, int] = {}
    if not single:
        if listed is not None:  # a folder: its listing holds the job.json files under it
            exists = {storage.to_url(fs, p) for p in listed if p.endswith(f"/{RECORD}")}.__contains__
        else:
            exists = fs.exists
        try:
            files, left = outside_other_jobs(spec, files, exists)
        except Exception as err:
            if (refusal := _cannot_list(spec, err)) is None:
                raise
            raise refusal from err
    if not files:
        there = _absent(fs, path) if absent else _what_is_there(spec, listed, left, preset)
        raise ConfigError(KEY, f"no Parquet files found at {spec!r}{there}")
    return ManifestFiles(files, f"input.manifest {spec}: left out {_jobs_left_out(left)}" if left else None)


def _cannot_list(spec: str | Path, err: Exception) -> ConfigError | None:
    """The ConfigError on input.manifest for a listing that failed with `err`; None for an error of ours (raised
    as it is)."""
    if not isinstance(err, (ValueError, ImportError)) and not storage.is_store_error(err):
        return None
    return ConfigError(KEY, f"cannot list {spec!r}: {storage.describe(err, spec)}")


def outside_other_jobs(spec: str | Path, files: list[str], exists: Callable[[str], bool]
                       ) -> tuple[list[str], dict[str, int]]:  # fmt: skip
    """`files` less the output manifests of batchvoc jobs, and how many files of each job's folder it left out.

    A file under `<folder>/manifest/` is a job's output where `<folder>/job.json` exists (`exists(url)`: a
    folder's listing, or the filesystem's exists, asked once per distinct folder). Where input.manifest's fixed
    part lies in that manifest/ folder (the folder itself, a file in it, a glob under it), reading it is deliberate
    and it is kept.
    """
    from batchvoc.outputs import MANIFEST_DIR, RECORD

    root = _fixed_part(spec)
    marker = f"/{MANIFEST_DIR}/"
    jobs: dict[str, bool] = {}  # a candidate job folder: whether it holds job.json
    kept, left = [], {}
    for file in files:
        job, at = None, file.find(marker)
        while at >= 0 and job is None:
            folder = file[:at]
            if not _under(root, f"{folder}/{MANIFEST_DIR}"):  # input.manifest names that manifest/: deliberate
                if folder not in jobs:
                    jobs[folder] = exists(f"{folder}/{RECORD}")
                job = folder if jobs[folder] else None
            at = file.find(marker, at + 1)
        if job is None:
            kept.append(file)
        else:
            left[job] = left.get(job, 0) + 1
    return kept, left


def _jobs_left_out(left: dict[str, int]) -> str:
    """`the output manifests of 2 batchvoc jobs, 12 files in all: /data/out (6 files), ...`, for
    outside_other_jobs's `left`."""
    from batchvoc.outputs import MANIFEST_DIR

    named = ", ".join(f"{job} ({counted(n, 'file')})" for job, n in sorted(left.items())[:JOBS_NAMED])
    more = f" and {len(left) - JOBS_NAMED} more" if len(left) > JOBS_NAMED else ""
    return (f"the output manifests of {counted(len(left), 'batchvoc job')}, {counted(sum(left.values()), 'file')} "
            f"in all: {named}{more} (a job's {MANIFEST_DIR}/ is read as input only where input.manifest names "
            "it)")  # fmt: skip


def _what_is_there(spec: str | Path, listed: list[str] | None, left: dict[str, int], preset: str = "") -> str:
    """What a folder or glob with no Parquet files to read holds instead, for list_manifest_files's error: other
    jobs' output manifests, or audio files (and how to make a manifest of them), or .npy mels."""
    from batchvoc.manifest.build import AUDIO_SUFFIXES

    if left:
        return f"; left out {_jobs_left_out(left)}"
    audio = sum(1 for name in listed or () if name.lower().endswith(AUDIO_SUFFIXES))
    npy = sum(1 for name in listed or () if name.lower().endswith(".npy"))
    if not (audio or npy):
        return ""
    kind, held = ("audio", counted(audio, "audio file")) if audio else ("npy", counted(npy, ".npy mel file"))
    if storage.is_url(spec):
        return f": it holds {held}; `python -m batchvoc.manifest {kind}` makes a manifest of a local folder of them"
    folder = str(spec).rstrip("/") or "/"
    if Path(folder).name in ("", ".", "..", "~"):
        folder = str(Path(folder).expanduser().resolve())
    named = f"--preset {preset}`" if preset else "--preset NAME` (NAME: the job's model.preset)"
    return (f": it holds {held}; make a manifest of them with `python -m batchvoc.manifest {kind} {folder} "
            f"{folder}.parquet {named}, then set input.manifest={folder}.parquet")  # fmt: skip


def outside_output(spec: str | Path, files: list[str], output_dir: str | Path) -> list[str]:
    """`files` (list_manifest_files's) less those the job writes, for input.manifest `spec` and output.dir.

    output.dir inside the manifest's folder (or under a glob's fixed part): every file under output.dir is left
    out. The manifest inside output.dir (or its folder being output.dir): the job's own entries there (manifest/,
    audio/, stats/, ...) are left out, other files are read. A manifest inside one of those entries cannot work
    (the job writes them, and output.overwrite=true deletes them): ConfigError naming both keys.
    """
    return _outside(spec, files, output_dir)[0]


def output_overlap(spec: str | Path, output_dir: str | Path) -> str | None:
    """One sentence saying how input.manifest and output.dir overlap and what the listing leaves out for it
    (the driver logs it once per job), or None where they do not; ConfigError as outside_output."""
    return _outside(spec, [], output_dir)[1]


def _outside(spec: str | Path, files: list[str], output_dir: str | Path) -> tuple[list[str], str | None]:
    from batchvoc.outputs import OUTPUT_ENTRIES

    try:
        fs, out = storage.filesystem(output_dir)
    except (ImportError, ValueError) as err:  # its protocol's package not installed (s3fs, gcsfs...), or a bad URL
        raise ConfigError("output.dir", f"cannot open {output_dir}: {first_line(err)} [{type(err).__name__}]") from None
    out = storage.to_url(fs, out)
    root = _fixed_part(spec)
    if _under(root, out):  # the input lies in output.dir: what the job writes there is not input
        mine = [f"{out}/{entry}" for entry in OUTPUT_ENTRIES]
        inside = next((entry for entry in mine if _under(root, entry)), None)
        if inside is not None:
            raise ConfigError(KEY, f"{spec} lies in {inside.rsplit('/', 1)[1]}/ of output.dir {out}, which the job "
                              "writes (and output.overwrite=true deletes): move the manifest out, or choose another "
                              "output.dir")  # fmt: skip
        left = [f for f in files if not any(_under(f, entry) for entry in mine)]
        return (
            left,
            f"input.manifest {spec} lies in output.dir {out}: the job's own outputs there are not read as input",
        )
    if _under(out, root):  # output.dir inside the input's folder: nothing under it is input
        left = [f for f in files if not _under(f, out)]
        return left, f"output.dir {out} lies inside input.manifest {spec}: nothing under output.dir is read as input"
    return files, None


def _fixed_part(spec: str | Path) -> str:
    """input.manifest as a URL (or absolute path) up to a glob's first wildcard's folder."""
    text = str(spec)
    if any(ch in text for ch in "*?["):
        text = text[: min(text.index(ch) for ch in "*?[" if ch in text)]
        text = (text.rsplit("/", 1)[0] or "/") if "/" in text else "."
    fs, path = storage.filesystem(text)
    return storage.to_url(fs, path)


def _under(path: str, folder: str) -> bool:
    folder = folder.rstrip("/")
    return path.rstrip("/") == folder or path.startswith(folder + "/")


def manifest_root(spec: str | None) -> str:
    """The folder input.manifest names (a file's folder; a glob's folder before its first wildcard)."""
    text = str(spec or "")
    if any(ch in text for ch in "*?["):
        text = text[: min(text.index(ch) for ch in "*?[" if ch in text)]
        return text.rsplit("/", 1)[0] if "/" in text else "."
    fs, path = storage.filesystem(text)
    folder = path if fs.isdir(path) else path.rsplit("/", 1)[0]
    return storage.to_url(fs, folder)


@dataclass(frozen=True)
class Footer:
    """A manifest part's path and its Parquet footer (`meta`: row count, schema, row groups' statistics), read once
    (read_footer) and handed on: the quick checks take the row count, the columns and the declared values from it,
    so an object-store part costs one read, not one per check."""

    path: str
    meta: pq.FileMetaData

    @property
    def num_rows(self) -> int:
        return self.meta.num_rows


def read_footer(path: str | Path) -> Footer:
    """The file's Parquet footer, or a ConfigError on input.manifest saying why it cannot be read."""
    try:
        return Footer(str(path), storage.parquet_file(path).metadata)
    except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds; the user needs one message
        raise ConfigError(KEY, _unreadable(path, err)) from err


def check_manifest_files(files: list[str]) -> list[str]:
    """The files that hold rows, each schema checked (`check_manifest_footers`, less the footers)."""
    return [footer.path for footer in check_manifest_footers(files)]


def check_manifest_footers(files: list[str]) -> list[Footer]:
    """The footers of the files that hold rows, each schema checked; empty parts (0 rows, with or without columns)
    are skipped with a warning naming them. ConfigError on input.manifest for an unreadable file, a bad schema, or
    when no file holds any row. Each file's footer is read once, and handed on (declared_values takes them)."""
    usable, both = [], []
    for path in files:
        footer = read_footer(path)
        if footer.num_rows == 0:
            log.warning("input.manifest: skipping %s: an empty Parquet part (0 rows)", path)
            continue
        if {"mel", "mel_path"} <= set(check_schema(footer).names):
            both.append(path)
        usable.append(footer)
    if not usable:
        where = f"{files[0]} holds" if len(files) == 1 else f"all {len(files)} Parquet files ({files[0]}, ...) hold"
        raise ConfigError(KEY, f"no rows to vocode: {where} 0 rows")
    if both:  # one source per manifest file: a row whose mel is null fails, saying mel_path is not read
        log.warning("input.manifest: %s both a 'mel' and a 'mel_path' column (%s%s): 'mel' is read, 'mel_path' "
                    "passed through to the output manifest unread", f"{len(both)} files have" if len(both) > 1
                    else "1 file has", both[0], ", ..." if len(both) > 1 else "")  # fmt: skip
    return usable


def check_first_schema(files: list[str]) -> Footer | None:
    """check_schema of the first file that holds rows (footers read until one does): one footer read that stops a
    manifest whose columns are wrong throughout in the quick checks, before the weights are read and Ray starts
    (a pretrained hifigan_v1 job on a 2-core CPU: refused in 1.3 s, 7.9 s before); the job checks every file when it
    plans (check_manifest_files). Where no file holds rows, the plan says so. ConfigError on input.manifest as
    check_schema. Returns the footer of the file it checked, to be handed on (None: no file holds rows)."""
    for path in files:
        footer = read_footer(path)
        if footer.num_rows:
            check_schema(footer)
            return footer
    return None


DECLARED = ("n_mels", "sample_rate", "hop_length")  # the integer columns a row may declare its mel's conventions in


def declared_values(files: list[str | Footer]) -> dict[str, set[int] | None]:
    """Per DECLARED column, the values every row of `files` declares, read from the Parquet footers' statistics
    (each file's footer once, none for a Footer already read, no rows read); None where that is not known: a file
    without the column, a row group without statistics, with nulls, or with more than one value. Empty parts and
    row groups declare nothing (the plan leaves them out; the quick checks pass them over). ConfigError on
    input.manifest for a file that cannot be read, as check_manifest_files words it."""
    values: dict[str, set[int] | None] = {column: set() for column in DECLARED}
    for part in files:
        meta = (part if isinstance(part, Footer) else read_footer(part)).meta
        if meta.num_rows == 0:
            continue
        where = {meta.schema.column(j).path: j for j in range(meta.num_columns)}
        for column, seen in values.items():
            if seen is None:
                continue
            if column not in where:
                values[column] = None
                continue
            for group in range(meta.num_row_groups):
                if meta.row_group(group).num_rows == 0:
                    continue
                stats = meta.row_group(group).column(where[column]).statistics
                if (stats is None or not stats.has_min_max or stats.null_count != 0 or stats.min != stats.max
                        or not isinstance(stats.min, int)):  # fmt: skip
                    values[column] = None
                    break
                seen.add(stats.min)
    return values


def refuse_if_every_row_declares_wrong(files: list[str | Footer], check: Callable[..., None]) -> None:
    """ConfigError on input.manifest where every row declares an n_mels, sample_rate or hop_length that
    `check(**{column: value})` (MelChecks.check_declared) refuses: the whole job would fail row by row. `files`:
    paths, or Footers already read (declared_values)."""
    for column, values in declared_values(files).items():
        reasons = []
        for value in sorted(values or ()):
            try:
                check(**{column: value})
            except RowError as err:
                reasons.append(str(err))
        if values and len(reasons) == len(values):
            listed = " or ".join(map(str, sorted(values)))
            said = (
                f"every row: {reasons[0]}"
                if len(values) == 1
                else f"every row declares {column} {listed}: {reasons[0]}"
            )
            raise ConfigError(KEY, f"{said} (mels made for another vocoder? --help lists the presets)")


def _unreadable(path: str | Path, err: Exception) -> str:
    if storage.access_kind(err):  # the store not reached: the file may be fine
        return f"cannot read {path}: {storage.describe(err, path)}"
    return f"{path} is not a readable Parquet file: {err}"


def check_schema(path: str | Path | Footer) -> pa.Schema:
    """The file's schema, or a ConfigError naming the missing or mistyped column. A Footer already read
    (read_footer) is not read again: its Arrow schema is the one the file gives (ParquetFile.schema_arrow)."""
    footer, path = (path, path.path) if isinstance(path, Footer) else (None, path)
    try:
        schema = footer.meta.schema.to_arrow_schema() if footer else storage.parquet_file(path).schema_arrow
    except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds; the user needs one message
        raise ConfigError(KEY, _unreadable(path, err)) from err
    names = set(schema.names)
    if "id" not in names:
        raise ConfigError(KEY, f"{path} has no 'id' column (columns: {', '.join(schema.names)})")
    _require_id_type(path, schema.field("id"))
    if "mel" in names:
        nested = _require_float_list(path, schema.field("mel"))
        if "n_frames" not in names and not nested:
            raise ConfigError(KEY, f"{path} has a 'mel' column but no 'n_frames' column to give its shape")
    elif "mel_path" not in names:
        raise ConfigError(KEY, f"{path} has neither a 'mel' column (with 'n_frames') nor a 'mel_path' column")
    elif not _is_text(schema.field("mel_path").type):
        raise ConfigError(KEY, f"{path}: column 'mel_path' must hold strings, not {schema.field('mel_path').type}")
    for column in NUMBER_COLUMNS:
        kind = schema.field(column).type if column in names else None
        if kind is not None and not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or _is_text(kind)):
            raise ConfigError(KEY, f"{path}: column {column!r} must hold numbers, not {kind}")  # text: per row
    return schema


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


def _require_float_list(path: Path, field: pa.Field) -> bool:
    """ConfigError unless 'mel' holds lists of floats, or lists of lists of floats; True for the nested kind."""
    kind = field.type
    nested = _is_list(kind) and _is_list(kind.value_type)
    leaf = kind.value_type.value_type if nested else getattr(kind, "value_type", None)
    if not _is_list(kind) or leaf is None or not pa.types.is_floating(leaf):
        shapes = "list<float32> [n_mels * n_frames] with n_frames, or nested [n_mels][n_frames]; float16/32/64"
        raise ConfigError(KEY, f"{path}: column 'mel' must hold lists of floats ({shapes}), not {kind}")
    return nested


def _is_text(kind: pa.DataType) -> bool:
    kind = kind.value_type if pa.types.is_dictionary(kind) else kind
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _require_id_type(path: Path, field: pa.Field) -> None:
    kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
    if not (_is_text(kind) or pa.types.is_integer(kind)):
        raise ConfigError(KEY, f"{path}: column 'id' must hold strings or integers, not {field.type}")
