"""Reading a shard's rows: each becomes a checked mel [n_mels, n_frames] or a one-line reason it cannot."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchvoc.errors import RowError
from batchvoc.manifest.shards import Shard

MAX_NAME_BYTES = 200
READ_ROWS = 64  # rows decoded at a time


@dataclass
class MelRow:
    """One input row: `mel` [n_mels, n_frames] float32 when it is good, else `error` says why not."""

    index: int  # row within the shard
    id: str
    mel: np.ndarray | None = None
    error: str | None = None


def passthrough_table(shard: Shard) -> pa.Table:
    """The shard's rows without the bulky 'mel' column: what the output manifest carries along."""
    parquet = pq.ParquetFile(shard.file)
    columns = [name for name in parquet.schema_arrow.names if name != "mel"]
    return parquet.read_row_groups(list(shard.row_groups), columns=columns)


def read_shard_rows(shard: Shard, n_mels: int, skip: set[int] | None = None) -> Iterator[MelRow]:
    """The shard's rows in order, one row group at a time; rows in `skip` come back without their mel."""
    parquet = pq.ParquetFile(shard.file)
    folder = Path(shard.file).parent
    duplicates = set(shard.duplicate_rows)
    skip = skip or set()
    index = 0
    # a few rows at a time, not whole row groups: the engine gets its first rows at once, not after a large
    # row group (hundreds of MB of mels) has been read and decoded
    for batch in parquet.iter_batches(batch_size=READ_ROWS, row_groups=list(shard.row_groups)):
        table = pa.Table.from_batches([batch])
        for offset, (key, mel) in enumerate(_mels_of(table, n_mels, folder)):
            row = index + offset
            if row in skip:
                yield MelRow(row, str(key))
                continue
            yield _checked(row, key, mel, duplicates)
        index += table.num_rows


def _checked(row: int, key, mel, duplicates: set[int]) -> MelRow:
    try:
        check_id(key)
        if row in duplicates:
            raise RowError(f"id {key!r} appears earlier in the manifest")
        if isinstance(mel, RowError):
            raise mel
        return MelRow(row, key, mel=mel)
    except RowError as err:
        return MelRow(row, str(key), error=str(err))


def check_id(key) -> None:
    """Refuse an id that is not a safe relative file name (it names the WAV file)."""
    if not isinstance(key, str) or not key:
        raise RowError("id is empty")
    if "\x00" in key:
        raise RowError("id contains a NUL character")
    if key.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", key):
        raise RowError(f"id {key!r} is an absolute path")
    parts = re.split(r"[/\\]", key)
    if ".." in parts:
        raise RowError(f"id {key!r} leaves the output folder ('..')")
    if any(part in ("", ".") for part in parts):
        raise RowError(f"id {key!r} has an empty or '.' path part")
    if any(len(part.encode()) > MAX_NAME_BYTES for part in parts):
        raise RowError(f"id {key!r} has a path part longer than {MAX_NAME_BYTES} bytes")


def _mels_of(table: pa.Table, n_mels: int, folder: Path) -> Iterator[tuple[object, np.ndarray | RowError]]:
    """(id, mel or the RowError for it) for each row of one row group."""
    ids = table.column("id").to_pylist()
    if "mel" in table.column_names:
        mels = _inline_mels(table, n_mels)
    else:
        mels = (_npy_mel(path, n_mels, folder) for path in table.column("mel_path").to_pylist())
    yield from zip(ids, mels, strict=True)


def _inline_mels(table: pa.Table, n_mels: int) -> Iterator[np.ndarray | RowError]:
    column = table.column("mel").combine_chunks()
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False)
    frames = table.column("n_frames").to_pylist()
    declared = table.column("n_mels").to_pylist() if "n_mels" in table.column_names else [None] * len(frames)
    nulls = column.is_null().to_pylist()
    for i, (n_frames, given) in enumerate(zip(frames, declared, strict=True)):
        try:
            if nulls[i]:
                raise RowError("mel is null")
            if given is not None and int(given) != n_mels:
                raise RowError(f"n_mels is {given}, the model takes {n_mels} mel bands")
            if n_frames is None or int(n_frames) <= 0:
                raise RowError(f"n_frames is {n_frames}: no frames to vocode")
            flat = values[offsets[i] : offsets[i + 1]]
            if flat.size != n_mels * int(n_frames):
                raise RowError(
                    f"mel holds {flat.size} values, not n_mels × n_frames = {n_mels} × {n_frames} (wrong n_mels?)"
                )
            yield _finite(flat.reshape(n_mels, int(n_frames)))
        except RowError as err:
            yield err


def _npy_mel(path: str | None, n_mels: int, folder: Path) -> np.ndarray | RowError:
    try:
        if not path:
            raise RowError("mel_path is empty")
        full = _inside(folder, path)
        try:
            mel = np.load(full, allow_pickle=False)
        except FileNotFoundError:
            raise RowError(f"mel_path {path!r} does not exist") from None
        except (OSError, ValueError) as err:
            raise RowError(f"mel_path {path!r} is not a readable .npy file: {err}") from None
        mel = np.squeeze(mel, axis=tuple(range(max(mel.ndim - 2, 0))))
        if mel.ndim != 2 or not np.issubdtype(mel.dtype, np.floating):
            raise RowError(f"mel_path {path!r} holds {mel.dtype}{list(mel.shape)}, not a float [n_mels, n_frames]")
        if mel.shape[0] != n_mels:
            raise RowError(f"mel_path {path!r} has {mel.shape[0]} mel bands, the model takes {n_mels}")
        if mel.shape[1] == 0:
            raise RowError(f"mel_path {path!r} has 0 frames: nothing to vocode")
        return _finite(mel)
    except RowError as err:
        return err


def _inside(folder: Path, path: str) -> Path:
    """The .npy path, resolved against the manifest's folder; relative paths may not leave it."""
    if "\x00" in path:
        raise RowError("mel_path contains a NUL character")
    if os.path.isabs(path):
        return Path(path)
    full = Path(os.path.normpath(folder / path))
    if full != folder and folder not in full.parents:
        raise RowError(f"mel_path {path!r} leaves the manifest's folder")
    return full


def _finite(mel: np.ndarray) -> np.ndarray:
    mel = np.ascontiguousarray(mel, dtype=np.float32)
    bad = mel.size - int(np.isfinite(mel).sum())
    if bad:
        raise RowError(f"mel has {bad} NaN or Inf values of {mel.size}")
    return mel
