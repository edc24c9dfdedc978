"""Reading a shard's rows: each becomes a checked mel [n_mels, n_frames] or a one-line reason it cannot.

Every exception while reading, decoding or checking one row becomes that row's RowError; nothing a row holds
escapes the reader. A row group that cannot be decoded at all fails its own rows, not the shard.
"""

from __future__ import annotations

import io
import logging
import math
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from batchvoc import storage
from batchvoc.errors import RowError
from batchvoc.manifest import cursors
from batchvoc.manifest.conventions import MelChecks
from batchvoc.manifest.shards import Shard, group_span, id_strings, row_place, shard_table
from batchvoc.manifest.short_rows import judge_together, pool_mel

log = logging.getLogger(__name__)

MAX_NAME_BYTES = 200
# a whole id: Linux's PATH_MAX is 4,096 bytes for output.dir, audio/<shard>/ and the id together
MAX_ID_BYTES = 1024
READ_ROWS = 16  # rows decoded at a time: about one engine batch of 10 s rows, so the first reaches the device soon
STREAM_BYTES = 8 << 20  # read buffer per column chunk
DECLARED = ("sample_rate", "hop_length", "n_mels")  # optional columns checked against the model
# never in an id (check_id): C0, DEL and C1 control characters, Unicode's line and paragraph separators (a name
# of two lines) and its bidirectional-text controls (a name that reads otherwise than it is spelled)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
WARNINGS_LOGGED = 3  # convention warnings (rows vocoded and marked suspect) logged per shard; the rest are counted


@dataclass
class MelRow:
    """One input row: `mel` [n_mels, n_frames] float32 natural-log when good, else `error` says why not.

    `warning`: a convention the mel may be in (check.mel_convention=warn, or a doubt in either mode: vocoded, suspect).
    """

    index: int  # row within the shard
    id: str | None  # None: the row's id is null (its output manifest row's too)
    mel: np.ndarray | None = None
    error: str | None = None
    warning: str | None = None
    # a skipped row (its audio written by an earlier run, not vocoded again): its mel, for the short rows' pooled
    # judgement alone (short_rows.py), so a row vocoded again is judged with the rows its first run judged it with
    reused_mel: np.ndarray | None = None


def passthrough_table(shard: Shard) -> pa.Table:
    """The shard's rows without the bulky 'mel' column: what the output manifest carries along."""
    names = storage.parquet_file(shard.file).schema_arrow.names
    return shard_table(shard, [name for name in names if name != "mel"])


def read_shard_rows(shard: Shard, checks: MelChecks | int, skip: set[int] | None = None) -> Iterator[MelRow]:
    """The shard's rows in order, a few at a time; rows in `skip` come back without their mel.

    checks: the model's MelChecks (an int: only n_mels is checked, no convention checks). Never raises for a
    row's content: a row that cannot be read, decoded or checked comes back with `error` set.
    """
    yield from logged_warnings((row for _, rows in read_batches(shard, checks, skip) for row in rows), shard.name)


def logged_warnings(rows: Iterable[MelRow], shard: str) -> Iterator[MelRow]:
    """rows as they come; the first WARNINGS_LOGGED rows' convention warnings are logged, then how many in all."""
    warned = 0
    for row in rows:
        if row.warning:
            if warned < WARNINGS_LOGGED:
                log.warning("row %s (%s): %s", row.index, row.id, row.warning)
            warned += 1
        yield row
    if warned > WARNINGS_LOGGED:
        log.warning("%s: %d rows in all may be in another mel convention (vocoded, marked suspect)", shard, warned)


Skip = Callable[[int, object], bool] | set[int] | None


def read_batches(shard: Shard, checks: MelChecks | int, skip: Skip = None) -> Iterator[tuple[pa.Table | None, list]]:
    """(the batch's columns other than `mel`, its MelRows) for each record batch of the shard, in row order.

    A row group that cannot be decoded gives (None, a MelRow with the reason for each of its rows not yet
    given): it fails its own rows, never the shard. Raises only when the file itself cannot be opened.
    """
    # pages streamed through a small buffer: pyarrow otherwise holds a row group's whole column chunk in memory
    parquet = storage.parquet_file(shard.file, pre_buffer=False, buffer_size=STREAM_BYTES)
    columns = [name for name in parquet.schema_arrow.names if name != "mel"]
    first = 0
    for group in shard.row_groups:
        begin, stop = group_span(shard, parquet, group)  # the shard's rows of this group (a shard is a row range)
        count = stop - begin
        done = 0
        try:
            # a few rows at a time, not whole row groups: the engine gets its first rows at once
            with cursors.reading(shard.file, parquet, group, begin, stop, READ_ROWS) as cursor:  # kept for the next
                for batch in cursor.rows(begin, stop):
                    table = pa.Table.from_batches([batch])
                    rows = list(decode_batch(table, first + done, shard, checks, skip))
                    yield table.select(columns), rows
                    done += table.num_rows
        except Exception as err:  # noqa: BLE001 - a broken row group fails its rows, never the shard
            reason = f"row group {group} could not be decoded: {one_line(err)}"
            yield None, [MelRow(first + offset, "", error=reason) for offset in range(done, count)]
        first += count


def decode_batch(table: pa.Table, first: int, shard: Shard, checks: MelChecks | int, skip: Skip = None
                 ) -> Iterator[MelRow]:  # fmt: skip
    """The rows of one record batch of `shard` (its first row is the shard's row `first`), decoded and checked.

    A row in `skip` (a set of shard rows, or skip(row, id) true) comes back without its mel and without an error
    (its audio exists already), its mel read into reused_mel for the short rows' judgement (short_rows.py). Never
    raises for a row: each row's exception becomes its `error`.
    """
    if not isinstance(checks, MelChecks):
        checks = MelChecks(int(checks), mode="off")
    if isinstance(skip, set):
        skip = _in_set(skip)
    duplicates, clashes = dict(shard.duplicate_rows), dict(shard.clashing_rows)
    try:
        rows = list(_table_rows(table, checks, shard.file, first, skip, shard.start + first))
    except Exception as err:  # noqa: BLE001 - a batch that cannot be decoded fails its own rows
        reason = f"rows could not be decoded: {one_line(err)}"
        rows = [MelRow(first + i, "", error=reason) for i in range(table.num_rows)]
    for row in rows:
        if row.error is None and row.index in duplicates:  # skipped or not: its id's file is the earlier row's
            where = f"at {duplicates[row.index]} ({_place(shard, row)})"
            row.mel, row.error = None, f"id {row.id!r} appears earlier in the manifest, {where}"
        elif row.error is None and row.index in clashes:  # its path and an earlier id's cannot both exist
            row.mel, row.error = None, f"{clashes[row.index]} ({_place(shard, row)})"
        yield row


def _place(shard: Shard, row: MelRow) -> str:
    """row_place of a shard's row: the output manifest holds its id twice, or beside one it clashes with."""
    return row_place(shard.file, shard.start + row.index)


def table_rows(table: pa.Table, file: str, checks: MelChecks | int) -> Iterator[MelRow]:
    """A MelRow per row of `table`, rows read from manifest `file` in any of the forms a job takes (inline flat
    with n_frames, inline nested lists, mel_path .npy relative to the file's folder), decoded and checked as the
    job does (checks: an int checks n_mels only). Never raises for a row: each row's exception is its `error`."""
    if not isinstance(checks, MelChecks):
        checks = MelChecks(int(checks), mode="off")
    yield from _table_rows(table, checks, file, 0, None, 0)


def _in_set(rows: set[int]) -> Callable[[int, object], bool]:
    def skip(row: int, _key) -> bool:
        return row in rows

    return skip


def _table_rows(table: pa.Table, checks: MelChecks, file: str, start: int, skip, file_start: int
                ) -> Iterator[MelRow]:  # fmt: skip
    """A MelRow per row of a decoded batch of manifest `file` whose first row is the shard's row `start` and the
    file's row `file_start` (which an id's error names); a skipped row's mel is read into its reused_mel alone.
    Rows too short to judge their convention alone are judged together (short_rows.py)."""
    rows = list(_each_row(table, checks, file, start, skip, file_start))
    judge_together(rows, checks)
    yield from rows


def _each_row(table: pa.Table, checks: MelChecks, file: str, start: int, skip, file_start: int
              ) -> Iterator[MelRow]:  # fmt: skip
    folder = _folder_of(file)
    ids = id_strings(table.column("id"))
    declared = {c: table.column(c).to_pylist() for c in DECLARED if c in table.column_names}
    # n_frames: the flat mel's shape; for a nested or .npy mel, checked against the frames it holds once read
    frames = table.column("n_frames").to_pylist() if "n_frames" in table.column_names else [None] * table.num_rows
    if "mel" in table.column_names:
        sources = _InlineMels(table.column("mel").combine_chunks(), paths_unread="mel_path" in table.column_names)
    else:
        sources = table.column("mel_path").to_pylist()
    fetched = _fetch_all(sources, folder) if isinstance(sources, list) else {}

    def checked(i: int) -> tuple[np.ndarray, str | None]:
        checks.check_declared(**{c: values[i] for c, values in declared.items()})
        what = "mel"
        if "mel" in table.column_names:
            mel = sources.mel(i, frames[i], checks.n_mels)
        else:
            mel, what = _npy_mel(sources[i], checks.n_mels, folder, fetched.get(i)), f"mel_path {sources[i]!r}"
            check_frames(frames[i], mel.shape[1], what)
        return checks.read(finite_float32(mel, what))

    for i, key in enumerate(ids):
        index, name = start + i, None if key is None else str(key)
        if skip is not None and skip(index, key):
            yield MelRow(index, name, reused_mel=pool_mel(lambda: checked(i)))  # noqa: B023 - called at once
            continue
        try:
            check_id(key)
        except RowError as err:  # the id names the row nowhere else: say where it is
            yield MelRow(index, name, error=f"{err} ({row_place(file, file_start + i)})")
            continue
        try:
            mel, warning = checked(i)
            yield MelRow(index, key, mel=mel, warning=warning)
        except RowError as err:
            yield MelRow(index, name, error=str(err))
        except Exception as err:  # noqa: BLE001 - whatever one row holds, it fails that row only
            yield MelRow(index, name, error=f"could not read the row: {one_line(err)}")


def check_id(key) -> None:
    """RowError unless `key` is a safe relative file name (it names the audio file): null, empty, not a string,
    a control character (C0, DEL, C1: a newline makes a file name of two lines), a backslash (a folder separator on
    Windows, a character of the name on Linux and object stores), absolute, `..`, empty, `.` or white-space
    parts, a part over MAX_NAME_BYTES or the whole over MAX_ID_BYTES."""
    if key is None:
        raise RowError("id is null")
    if isinstance(key, str) and not key:
        raise RowError("id is empty")
    if not isinstance(key, str):
        raise RowError(f"id is {type(key).__name__} {key!r}: use a string or an integer")
    control = CONTROL.search(key)
    if control is not None:
        raise RowError(f"id {_quoted(key)} holds a control character (U+{ord(control.group()):04X}): ids name "
                       f"audio files, whose names hold none")  # fmt: skip
    if "\\" in key:
        raise RowError(f"id {_quoted(key)} holds a backslash (U+005C): a folder separator on Windows, a character "
                       f"of the name elsewhere; use '/' for folders")  # fmt: skip
    if key.startswith("/") or re.match(r"^[A-Za-z]:", key):
        raise RowError(f"id {key!r} is an absolute path")
    parts = key.split("/")
    if ".." in parts:
        raise RowError(f"id {key!r} leaves the output folder ('..')")
    if any(part in ("", ".") for part in parts):
        raise RowError(f"id {key!r} has an empty or '.' path part")
    if any(part.isspace() for part in parts):  # a file (or folder) whose name no listing shows
        raise RowError(f"id {key!r} has a path part of white space only")
    if any(len(part.encode()) > MAX_NAME_BYTES for part in parts):
        raise RowError(f"id {key!r} has a path part longer than {MAX_NAME_BYTES} bytes")
    if len(key.encode()) > MAX_ID_BYTES:
        raise RowError(f"id {key[:40]!r}... is {len(key.encode())} bytes long: at most {MAX_ID_BYTES} make a file path")


def _quoted(key: str) -> str:
    """An id in a reason: repr-quoted (escapes keep the reason one line), its first 40 characters where it is
    over MAX_ID_BYTES."""
    return repr(key) if len(key.encode()) <= MAX_ID_BYTES else f"{key[:40]!r}..."


def shown_id(key) -> str:
    """An id (an output manifest's, None for a null one) as messages show it: `null` for a null id; repr-quoted,
    so the message stays one line and shows what it holds, an id with a control character (refused: check_id), with
    nothing to see (empty, white space: an empty id, the rows of a row group that could not be decoded) or the text
    `null` (not to be read as a null id); any other as it is (a file name too: the manifest builder's skipped
    files)."""
    if key is None:
        return "null"
    text = str(key)
    return repr(text) if not text.strip() or text == "null" or CONTROL.search(text) else text


class _InlineMels:
    """A decoded batch's `mel` column: flat lists ([n_mels * n_frames] with an n_frames column) or nested lists
    ([n_mels][n_frames]), list, large_list or fixed-size, of float16/32/64."""

    def __init__(self, column: pa.Array, paths_unread: bool = False):
        """paths_unread: the manifest has a mel_path column too, which a mel column makes unread (said in errors)."""
        self.null_error = "mel is null" + ("; mel_path is not read where a manifest has a mel column" * paths_unread)
        column = _variable_lists(column)
        self.nulls = column.is_null().to_numpy(zero_copy_only=False)
        self.offsets = column.offsets.to_numpy()
        self.nested = _is_list_type(column.type.value_type)
        inner = column.values
        self.inner_offsets = inner.offsets.to_numpy() if self.nested else None
        leaves = inner.values if self.nested else inner
        self.values = leaves.to_numpy(zero_copy_only=False)

    def mel(self, i: int, n_frames, n_mels: int) -> np.ndarray:
        """Row i as [n_mels, n_frames]; RowError for a null, a wrong size or a ragged nesting."""
        if self.nulls[i]:
            raise RowError(self.null_error)
        if self.nested:
            return self._nested(i, n_frames, n_mels)
        return flat_mel(self.values[self.offsets[i] : self.offsets[i + 1]], n_frames, n_mels)

    def _nested(self, i: int, n_frames, n_mels: int) -> np.ndarray:
        bounds = self.inner_offsets[self.offsets[i] : self.offsets[i + 1] + 1]
        lengths = np.diff(bounds)
        if lengths.size == 0 or lengths.min() != lengths.max():
            raise RowError(f"mel's nested lists are ragged or empty (lengths {sorted(set(lengths.tolist()))[:5]})")
        rows, frames = int(lengths.size), int(lengths[0])
        if rows != n_mels:
            hint = " (stored [n_frames][n_mels]? store the transpose)" if frames == n_mels else ""
            raise RowError(f"mel holds {rows} lists of {frames}: {rows} mel bands, the model takes {n_mels}{hint}")
        check_frames(n_frames, frames, "the nested mel")
        return self.values[bounds[0] : bounds[-1]].reshape(rows, frames)


def flat_mel(flat: np.ndarray, n_frames, n_mels: int) -> np.ndarray:
    """A flat C-ordered mel [n_mels * n_frames] (the manifest's layout with an n_frames column) as [n_mels, n_frames]
    (a view); RowError for an n_frames that is no positive whole number, or a size that is not n_mels x n_frames."""
    n_frames = _frame_count(n_frames)
    if flat.size != n_mels * n_frames:
        bands, left = divmod(flat.size, n_frames)
        hint = (f"{bands} mel bands of {n_frames} frames? the model takes {n_mels}" if not left and bands
                else "wrong n_mels or n_frames?")  # fmt: skip
        raise RowError(f"mel holds {flat.size} values, not n_mels x n_frames = {n_mels} x {n_frames} ({hint})")
    return flat.reshape(n_mels, n_frames)


def check_frames(n_frames, frames: int, what: str) -> None:
    """RowError where a row's declared n_frames (None: not given) is no positive whole number or is not the
    `frames` its mel holds (a nested or .npy mel, as read); `what` names that mel in the reason."""
    if n_frames is not None and _frame_count(n_frames) != frames:
        raise RowError(f"n_frames is {n_frames}, {what} holds {frames} frames")


def _frame_count(n_frames) -> int:
    """n_frames as a positive whole number (numbers stored as text too); RowError naming the column."""
    try:
        value = float(n_frames)
    except (TypeError, ValueError):
        value = math.nan
    if not (value > 0 and value.is_integer()):
        raise RowError(f"n_frames is {n_frames}: no frames to vocode (a positive whole number is needed)")
    return int(value)


def _is_list_type(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


def _variable_lists(column: pa.Array) -> pa.Array:
    """Fixed-size lists (at either level) cast to variable-size lists of the same values."""
    kind = column.type
    inner = kind.value_type
    if _is_list_type(inner) and pa.types.is_fixed_size_list(inner):
        inner = pa.list_(inner.value_type)
    if pa.types.is_fixed_size_list(kind) or inner != kind.value_type:
        return column.cast(pa.list_(inner) if not pa.types.is_large_list(kind) else pa.large_list(inner))
    return column


FETCH_THREADS = 16  # a read batch's (READ_ROWS) mel_path files on an object store, fetched at once
_fetcher: ThreadPoolExecutor | None = None


def _fetch_all(paths: list, folder: str) -> dict[int, Future]:
    """Futures of the bytes of a batch's mel_path files that are URLs (an object store answers each GET after tens
    of ms: one after another, a worker's reader feeds a GPU slower than it vocodes); local files are read as they
    are. A path that does not resolve gets none: its row's read says why."""
    urls = {}
    for i, path in enumerate(paths):
        try:
            full = _mel_file(path, folder)
        except RowError:
            continue
        if storage.is_url(full):
            urls[i] = full
    if len(urls) < 2:
        return {}
    global _fetcher
    if _fetcher is None:
        _fetcher = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="batchvoc-fetch")
    return {i: _fetcher.submit(_fetch, full) for i, full in urls.items()}


def _fetch(url: str) -> bytes:
    fs, path = storage.filesystem(url)
    return fs.cat_file(path)  # one GET (an open would ask for the size first)


def _npy_mel(path, n_mels: int, folder: str, fetched: Future | None = None) -> np.ndarray:
    """The .npy at `path` as [n_mels, n_frames]: size-1 axes are squeezed, nothing else is reshaped. `fetched`:
    its bytes, read ahead (_fetch_all)."""
    full = _mel_file(path, folder)
    try:
        with io.BytesIO(fetched.result()) if fetched is not None else storage.open_input(full) as handle:
            mel = np.load(handle, allow_pickle=False)
    except FileNotFoundError:
        raise RowError(f"mel_path {path!r} does not exist") from None
    except Exception as err:  # noqa: BLE001 - numpy raises many kinds for a bad file
        if storage.is_url(full) and (isinstance(err, PermissionError) or storage.access_kind(err)):  # not its data
            refused = " (refused: check the keys and what they may read)" if not storage.access_kind(err) else ""
            raise RowError(f"mel_path {path!r} cannot be read: {storage.describe(err, full)}{refused}") from None
        raise RowError(f"mel_path {path!r} is not a readable .npy file: {npy_error(err, full)}") from None
    if isinstance(mel, np.lib.npyio.NpzFile):  # np.load opens any zip archive as one, a torch.save file too
        mel.close()
        raise RowError(f"mel_path {path!r} is a zip archive (an .npz or a torch.save file), not a .npy array: "
                       "save each mel with np.save")  # fmt: skip
    return npy_array_mel(mel, f"mel_path {path!r}", n_mels)


def npy_array_mel(mel: np.ndarray, what: str, n_mels: int | None, taker: str = "the model") -> np.ndarray:
    """An array loaded from a .npy as [n_mels, n_frames] (a view), checked as a job checks a mel_path row's: floats
    (require_floats), size-1 axes squeezed and nothing else reshaped, `n_mels` bands (None: any). RowError naming
    `what` (and `taker`, whose n_mels it is). finite_float32 checks the values: the job's reader and the manifest
    builder call both."""
    require_floats(mel, what)
    shape = list(mel.shape)
    mel = mel.reshape(squeezed_shape(mel.shape))
    if mel.ndim != 2:
        raise RowError(f"{what} holds shape {shape}, not [n_mels, n_frames] (size-1 axes aside)")
    if n_mels is not None and mel.shape[0] != n_mels:
        hint = " (stored [n_frames, n_mels]? save mel.T)" if mel.shape[1] == n_mels else ""
        raise RowError(f"{what} has {mel.shape[0]} mel bands, {taker} takes {n_mels}{hint}")
    return mel


def npy_frames(path: str, file: str) -> int:
    """The frames of the .npy mel a row of manifest `file` names as `path` (resolved as the reader resolves it),
    from the file's header alone: no array data is read. RowError, OSError or ValueError where it cannot tell."""
    npy = np.lib.format
    with storage.open_input(_mel_file(path, _folder_of(file))) as handle:
        version = npy.read_magic(handle)
        shape, _, _ = (npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0)(handle)
    dims = squeezed_shape(shape)
    if len(dims) != 2:
        raise ValueError(f"mel_path {path!r} holds shape {list(shape)}, not [n_mels, n_frames]")
    return int(dims[1])


def require_floats(mel, what: str) -> None:
    """RowError unless `mel` is an array of floating-point values (numpy, or anything with torch's
    `is_floating_point`, of any float width): integers, booleans, text and objects are refused, never cast.
    `what` names the mel in the reason ("mel_path 'x.npy'", "mel")."""
    floating = getattr(mel, "is_floating_point", None)
    if callable(floating):  # a torch tensor (not imported here)
        ok = bool(floating())
    else:
        ok = isinstance(mel, np.ndarray) and np.issubdtype(mel.dtype, np.floating)
    if not ok:
        dtype = str(getattr(mel, "dtype", type(mel).__name__)).removeprefix("torch.")
        raise RowError(f"{what} holds {dtype}, not float values")


def squeezed_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """`shape` without size-1 axes, as many as needed to reach 2 axes and no more: leading ones first, then
    trailing, then inner ([1, 80, 1] -> [80, 1]: one frame; [1, 80, 6, 1] -> [80, 6]). Other axes stay."""
    dims = list(shape)
    while len(dims) > 2 and dims[0] == 1:
        dims.pop(0)
    while len(dims) > 2 and dims[-1] == 1:
        dims.pop()
    while len(dims) > 2 and 1 in dims:
        dims.remove(1)
    return tuple(dims)


def _mel_file(path, folder: str) -> str:
    """A row's mel_path resolved against its manifest's folder (`_inside`); RowError where it is empty."""
    if not isinstance(path, str) or not path:
        raise RowError("mel_path is empty")
    return _inside(folder, path)


def _folder_of(file: str) -> str:
    """The manifest file's folder: a local path, or a URL for a file in an object store."""
    return file.rsplit("/", 1)[0] if storage.is_url(file) else str(Path(file).parent)


def _inside(folder: str, path: str) -> str:
    """The .npy path (or URL), resolved against the manifest's folder; relative paths may not leave it."""
    if "\x00" in path:
        raise RowError("mel_path contains a NUL character")
    if storage.is_url(path) or os.path.isabs(path):
        return path
    if storage.is_url(folder):
        scheme, rest = folder.split("://", 1)
        full = posixpath.normpath(posixpath.join(rest, path))
        if full != rest and not full.startswith(rest.rstrip("/") + "/"):
            raise RowError(f"mel_path {path!r} leaves the manifest's folder")
        return f"{scheme}://{full}"
    base = Path(folder)
    full = Path(os.path.normpath(base / path))
    if full != base and base not in full.parents:
        raise RowError(f"mel_path {path!r} leaves the manifest's folder")
    return str(full)


def finite_float32(mel: np.ndarray, what: str = "mel") -> np.ndarray:
    """`mel` [n_mels, n_frames] (2-D) of floats as C-contiguous float32 (the model's input). RowError naming
    `what` for 0 frames, NaN or Inf values, or a finite value float32 cannot hold (a float64 beyond +-3.4e38,
    which the cast would make Inf): the first such value named with its frame and band."""
    if mel.shape[-1] == 0:
        raise RowError(f"{what} has 0 frames: nothing to vocode")
    finite = np.isfinite(mel)
    bad = mel.size - int(finite.sum())
    if bad:
        raise RowError(f"{what} has {bad} NaN or Inf values of {mel.size}")
    limit = np.finfo(np.float32).max
    if np.finfo(mel.dtype).max > limit:  # only a wider float can hold what float32 cannot
        beyond = np.abs(mel) > limit
        count = int(np.count_nonzero(beyond))
        if count:
            band, frame = np.unravel_index(int(np.argmax(beyond)), mel.shape)
            value = float(mel[band, frame])
            raise RowError(f"{what} has {count} value{'s' * (count > 1)} out of float32 range (e.g. {value:.3g} at "
                           f"frame {frame}, band {band}): {mel.dtype} values are read as float32, whose largest is "
                           f"{limit:.3g}")  # fmt: skip
    return np.ascontiguousarray(mel, dtype=np.float32)


def one_line(err: BaseException) -> str:
    """An exception as one line: its type and its message's first 300 characters."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


NPY_MAGIC = b"\x93NUMPY"  # the first bytes of every .npy file (numpy.lib.format)


def npy_error(err: BaseException, source: str | Path | None = None) -> str:
    """Why np.load(allow_pickle=False) refused a file, in words.

    numpy reads a file without the .npy magic as a pickle and refuses it as one, and says the same of a real .npy
    holding objects; a short file makes it report sizes. So with `source` (the file's path or URL) its own header
    says which it is (`npy_fault`); else, or where the header looks sound, numpy's error in one line."""
    if source is not None:
        try:
            with storage.open_input(source) as handle:
                fault = npy_fault(handle)
        except Exception:  # noqa: BLE001 - the file cannot be read again: numpy's own error says why
            fault = None
        if fault is not None:
            return fault
    if isinstance(err, ValueError) and "allow_pickle" in str(err):
        return "not a .npy array file (numpy reads it as pickled objects, which are never loaded)"
    return one_line(err)


def npy_fault(handle) -> str | None:
    """What is wrong with the .npy file open in `handle` (at its start), read from its header: no .npy magic (a
    corrupt or truncated file, or another format), a damaged header, an object array (stored pickled), less array
    data than the header declares (a truncated file); None where the header finds nothing wrong."""
    if handle.read(len(NPY_MAGIC)) != NPY_MAGIC:
        return "no .npy header (a corrupt or truncated file, or not .npy)"
    handle.seek(0)
    npy = np.lib.format
    try:
        version = npy.read_magic(handle)
        shape, _, dtype = (npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0)(handle)
    except Exception as err:  # noqa: BLE001 - numpy raises several kinds for a bad header
        return f"its .npy header is damaged or cut short ({one_line(err)})"
    if dtype.hasobject:
        return (f"a .npy of Python objects (dtype {dtype}): numpy stores them as pickled objects, which are never "
                f"loaded")  # fmt: skip
    expected = dtype.itemsize * math.prod(shape)
    start = handle.tell()
    held = handle.seek(0, os.SEEK_END) - start
    if held < expected:
        return (f"truncated: its header declares {dtype} {list(shape)}, {expected} bytes of data, and the file "
                f"holds {held}")  # fmt: skip
    return None
