"""Shard planning: cut manifests into row ranges of about equal audio, and read a shard's rows back.

A shard is a range of rows of one file, cut where its audio reaches `input.shard_seconds` (inside row groups
where they are larger), so progress and restarts have the grain the user asked for. Cuts are counted from the
start of each file, so rows appended to a file change only its last shard's name, never the ones before it.

Each shard is packed on its own (its last engine batch is part-filled: on a GPU, 24 batches of 16 rows for a 1 h
manifest that one stream packs into 23). Given the engine's chunk plan (`packing`), the planner cuts where a
shard's rows pack into whole batches instead: at the utterance end, within half a batch's audio of the target
(at most a quarter of it), whose packed rows (chunking.Tape, the packer's own layout) leave the fewest frames
of their last batch empty. A plan of batch 1 (a CPU's) cuts as without one: its last batch is never part-filled.

Ids name audio files (`<id>.<ext>`, '/' in an id makes folders), so two ids can need one path: an id whose file
`a.wav` is a folder another id's file lies in (`a.wav/b`), in either manifest order. Like a duplicate id, the later
row of such a pair (in manifest order, across files) is refused at planning (`Shard.clashing_rows`), with a reason
naming the earlier id: its write would fail, and every other row is written.
"""

from __future__ import annotations

import math
import os
import posixpath
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchvoc import storage
from batchvoc.chunking import ChunkPlan, Tape

# Frames assumed per row where a manifest has no n_frames column (mel_path rows, nested lists): only sizes shards
# (their names depend on it); the progress bar's audio is estimated apart (manifest/estimate.py)
FRAMES_PER_ROW_GUESS = 500


@dataclass(frozen=True)
class Shard:
    """Rows [start, stop) of one manifest file; the unit of work, of output files and of restart.

    `file` is a local path or fsspec URL; `row_groups` are the file's row groups the range overlaps and
    `first_row` the file row where the first of them begins. `duplicate_rows` (shard-relative row, where its id
    first appears: `row N of FILE`) are the rows whose id was seen earlier in the manifest; `clashing_rows`
    (shard-relative row, reason) those whose audio file path and an earlier id's cannot both exist (module doc).
    `columns`: the job's pass-through schema (batchvoc.outputs), set by the driver so that every shard's output
    manifest has the same columns.
    `frames_guessed`: the file has no n_frames column, so `frames` is an estimate (FRAMES_PER_ROW_GUESS a row when
    planned), not the rows' frames.
    """

    name: str
    file: str
    start: int
    stop: int
    row_groups: tuple[int, ...]
    first_row: int
    frames: int
    duplicate_rows: tuple[tuple[int, str], ...] = field(default=())
    clashing_rows: tuple[tuple[int, str], ...] = field(default=())
    frames_guessed: bool = False
    columns: pa.Schema | None = field(default=None, compare=False, repr=False)

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass
class _FileRows:
    frames: Sequence[int]  # per row: an array('q') (8 bytes a row; a list where a value is beyond int64)
    group_starts: list[int]  # file row where each row group begins (one extra: the file's row count)
    duplicates: dict[int, str]  # file row whose id was seen before -> where it first appears (`row N of FILE`)
    guessed: bool = False  # no n_frames column: FRAMES_PER_ROW_GUESS a row
    clashes: dict[int, str] = field(default_factory=dict)  # file row -> why its audio path clashes with an earlier id's


@dataclass
class _AudioPaths:
    """The audio paths the ids planned so far take (`<id><suffix>`, '/' making folders), to find the ids whose
    path and an earlier id's cannot both exist: one's file is a folder on the other's path.

    `seen` maps every id met (the duplicate check's) to where its first row is, `refused` holds those of them
    that take no path (a clash of their own); `folders` maps each folder whose name ends in the suffix (only those
    can be another id's file) to the first id the row check takes whose path passes through it.
    """

    suffix: str
    seen: dict = field(default_factory=dict)
    refused: set = field(default_factory=set)
    folders: dict[str, str] = field(default_factory=dict)

    def meet(self, key, where) -> str | None:
        """Id `key`, met for the first time at `where` (its row): recorded, and why its audio path clashes with
        an earlier id's, or None (`clash`; ids other than strings take no path here)."""
        self.seen[key] = where
        return self.clash(key) if isinstance(key, str) else None

    def clash(self, key: str) -> str | None:
        """Why id `key` (met for the first time) cannot have its audio file beside the earlier ids', or None;
        the path is taken where it can. An id the row check refuses (check_id) takes and clashes with nothing:
        its row fails for its own reason, and writes nothing."""
        if not _safe(key):  # refused by the row check for its own reason: its folders are not made either
            return None
        file = key + self.suffix
        parts = key.split("/")
        prefixes = ["/".join(parts[:k]) for k in range(1, len(parts))]  # the folders its file lies in
        reason = None
        other = self.folders.get(file)
        if other is not None:
            reason = (f"id {key!r}: its audio file {file!r} would be where id {other!r} (earlier in the manifest) "
                      f"needs a folder")  # fmt: skip
        for folder in prefixes if reason is None else ():
            other = folder.removesuffix(self.suffix)
            if folder.endswith(self.suffix) and other in self.seen and other not in self.refused and _safe(other):
                reason = (f"id {key!r}: it needs a folder {folder!r} where the audio file of id {other!r} (earlier "
                          f"in the manifest) goes")  # fmt: skip
                break
        if reason is not None:
            self.refused.add(key)
            return reason
        for folder in prefixes:
            if folder.endswith(self.suffix):
                self.folders.setdefault(folder, key)
        return None


def _safe(key: str) -> bool:
    """Whether the row check takes `key` as an id (rows.check_id): only such ids write files."""
    from batchvoc.errors import RowError
    from batchvoc.manifest.rows import check_id  # rows reads shards: imported here, for the few ids that clash

    try:
        check_id(key)
    except RowError:
        return False
    return True


def plan_shards(files: list[str | Path], target_frames: int, root: str | Path | None = None,
                packing: ChunkPlan | None = None, extension: str = "wav") -> list[Shard]:  # fmt: skip
    """Shards of about `target_frames` frames each, in file and row order; deterministic for a manifest (and
    `packing`). `packing`: the engine's chunk plan, whose batches the shards' rows should fill (module doc); None:
    cut where the audio reaches the target. `extension`: the audio files' (output.format), for the ids whose audio
    paths clash (module doc).

    Shard names are `<file>.r<start>-<stop>` (rows, zero-padded), `<file>` the file's path below `root` (the
    manifest's folder; default: the files' common folder) without `.parquet`, folders joined by `__`.
    """
    return ManifestRows.read(files, root, extension).shards(target_frames, packing)


@dataclass
class ManifestRows:
    """What planning reads of a manifest (frames per row, row groups, duplicate and clashing ids of each file), read
    once (`read`) and cut into shards later (`shards`), e.g. once the engine's chunk plan is known."""

    names: dict[str, str]  # file -> its name prefix
    files: dict[str, _FileRows]

    @classmethod
    def read(cls, files: list[str | Path], root: str | Path | None = None, extension: str = "wav") -> ManifestRows:
        """Read the `id` and `n_frames` columns of every file (plan_shards for `root` and `extension`)."""
        paths = [str(f) for f in files]
        names = _prefixes(paths, None if root is None else str(root))
        rows: dict[str, _FileRows] = {}

        def id_columns() -> Iterator[pa.ChunkedArray]:  # a file at a time: of its columns only the ids are kept
            for path in paths:
                rows[path], ids = _file_rows(path)
                # the read's buffers, which Arrow's allocator keeps otherwise: 2M rows' peak 50 MB lower, and 130
                # MB less held after planning
                pa.default_memory_pool().release_unused()
                yield ids

        for path, (duplicates, clashes) in zip(paths, _id_marks(id_columns(), f".{extension}"), strict=True):
            earlier = {row: row_place(paths[file], first) for row, (file, first) in duplicates.items()}
            rows[path].duplicates, rows[path].clashes = earlier, clashes
        pa.default_memory_pool().release_unused()
        return cls(names, rows)

    def files_with_rows(self) -> list[str]:
        """The files that hold rows (those the shards come from), sorted."""
        return sorted(path for path, rows in self.files.items() if rows.frames)

    def shards(self, target_frames: int, packing: ChunkPlan | None = None) -> list[Shard]:
        """The shards (plan_shards); a file without n_frames is cut on its guessed frames, without `packing`."""
        return [s for path in self.files for s in self._file_shards(path, target_frames, packing)]

    def recut(self, on_audio: list[Shard], target_frames: int, packing: ChunkPlan | None) -> list[Shard]:
        """shards(target_frames, packing), given `on_audio`, this manifest's shards(target_frames) (their frames may
        have been changed since, e.g. estimated): the files `packing` cuts otherwise (n_frames known, a batch over
        1) are cut anew, the others keep their shards of `on_audio` as they are."""
        kept: dict[str, list[Shard]] = {}
        for shard in on_audio:
            kept.setdefault(shard.file, []).append(shard)
        shards: list[Shard] = []
        for path, rows in self.files.items():
            shards += self._file_shards(path, target_frames, packing) if _aligned(rows, packing) else kept.get(path, [])
        return shards

    def _file_shards(self, path: str, target_frames: int, packing: ChunkPlan | None) -> list[Shard]:
        rows = self.files[path]
        frames = list(rows.frames)  # a list's items are read faster than an array's
        aligned = _aligned(rows, packing)
        cuts = _cut_packed(frames, target_frames, packing) if aligned else _cut(frames, target_frames)
        shards = []
        starts, duplicates, clashing = rows.group_starts, sorted(rows.duplicates), sorted(rows.clashes)
        for start, stop in cuts:
            # the groups g with starts[g] < stop and starts[g + 1] > start (starts never decrease: a run of them)
            groups = range(max(bisect_right(starts, start) - 1, 0), min(bisect_left(starts, stop), len(starts) - 1))
            shards.append(
                Shard(
                    name=f"{self.names[path]}.r{start:09d}-{stop:09d}",
                    file=path,
                    start=start,
                    stop=stop,
                    row_groups=tuple(groups),
                    first_row=rows.group_starts[groups[0]],
                    frames=sum(frames[start:stop]),
                    duplicate_rows=tuple((r - start, rows.duplicates[r]) for r in _within(duplicates, start, stop)),
                    clashing_rows=tuple((r - start, rows.clashes[r]) for r in _within(clashing, start, stop)),
                    frames_guessed=rows.guessed,
                )
            )
        return shards


def row_place(file: str, row: int) -> str:
    """Where a row is, for its errors: `row N of FILE`, N counted from 0 in the manifest file (local path or URL)."""
    return f"row {row} of {file}"


def _within(rows: list[int], start: int, stop: int) -> list[int]:
    """The rows of sorted `rows` in [start, stop)."""
    return rows[bisect_left(rows, start) : bisect_left(rows, stop)]


def _aligned(rows: _FileRows, packing: ChunkPlan | None) -> bool:
    """Whether `packing` cuts the file's rows for its batches (else they are cut on audio alone)."""
    return packing is not None and packing.batch > 1 and not rows.guessed


def _file_rows(path: str) -> tuple[_FileRows, pa.ChunkedArray]:
    """Frames per row and row-group starts of one file, and its id column (duplicates and clashes: `_id_marks`)."""
    parquet = storage.parquet_file(path)
    has_frames = "n_frames" in parquet.schema_arrow.names
    table = parquet.read(columns=["id", "n_frames"] if has_frames else ["id"])
    starts = [0]
    for index in range(parquet.metadata.num_row_groups):
        starts.append(starts[-1] + parquet.metadata.row_group(index).num_rows)
    frames = _frames_of(table.column("n_frames")) if has_frames else array("q", [FRAMES_PER_ROW_GUESS]) * table.num_rows
    return _FileRows(frames, starts, set(), guessed=not has_frames), table.column("id")


def _frames_of(column: pa.ChunkedArray) -> Sequence[int]:
    """[_frames(n) for n in column], a column of numbers at once (Python's float(n) as Arrow's unsafe cast), as an
    array('q') where every value fits."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = pc.fill_null(column.cast(pa.float64(), safe=False), 0.0).to_numpy()
        usable = np.isfinite(values) & (values > 0)
        if not (values[usable] >= 2.0**63).any():  # else beyond int64: as Python does it, below
            return array("q", np.where(usable, values, 0.0).astype(np.int64).tobytes())
    frames = [_frames(n) for n in column.to_pylist()]
    try:
        return array("q", frames)
    except OverflowError:
        return frames


Marks = tuple[dict[int, tuple[int, int]], dict[int, str]]  # duplicates (row -> (file, row) of the id's first), clashes


def _id_marks(columns: Iterable[pa.ChunkedArray], suffix: str) -> list[Marks]:
    """For the id column of each file of a manifest (in order), its rows whose id an earlier row holds (across
    files) and those whose audio path clashes with an earlier id's, with why (`_AudioPaths.clash`): what
    `_marks_by_row` finds, found with Arrow for string and integer ids: ranked by a sort, not hashed into a set (2M
    ids on a 2-core CPU: 0.6 s in id order, 2.1 s shuffled, 5.3 s one by one; benchmarks/plan_scale.py).

    Only an id with a folder that ends in the suffix (`a.wav/b`: it holds `.wav/`) can take a path another id's
    file needs, so only those ids and the ids whose file is such a folder are run through `_AudioPaths`, in manifest
    order (a corpus's usual ids: none)."""
    parts: list[pa.ChunkedArray | list] = []  # per file: its ids as strings (id_strings's where of another type)
    for column in columns:
        text = _as_text(column)
        parts.append(id_strings(column) if text is None else text)
    if any(isinstance(part, list) for part in parts):  # ids of other types (the schema check refuses them)
        return _marks_by_row([part if isinstance(part, list) else part.to_pylist() for part in parts], suffix)
    lengths = [len(part) for part in parts]
    kind = pa.string() if all(part.type == pa.string() for part in parts) else pa.large_string()
    ids = pa.chunked_array([chunk for part in parts for chunk in part.cast(kind).chunks], kind)
    earliest = _earliest_rows(ids)
    first = earliest == np.arange(len(ids))
    clashes: dict[int, str] = {}
    needs = first & _found(pc.match_substring(ids, suffix + "/"))  # ids with a folder named like an audio file
    if "/" in suffix:  # a folder then ends in it otherwise: every id is run (plan_shards's extension is a name)
        needs = first & _found(pc.is_valid(ids))
    if needs.any():
        folders = {f for key in ids.filter(pa.array(needs)).to_pylist() for f in _suffixed_folders(key, suffix)}
        as_files = pc.binary_join_element_wise(ids, pa.scalar(suffix, kind), pa.scalar("", kind))
        needs |= first & _found(pc.is_in(as_files, value_set=pa.array(sorted(folders), kind)))
        rows = np.flatnonzero(needs)
        taken = _AudioPaths(suffix)
        for row, key in zip(rows.tolist(), ids.filter(pa.array(needs)).to_pylist(), strict=True):
            reason = taken.meet(key, row)
            if reason is not None:
                clashes[row] = reason
    starts = np.cumsum([0, *lengths])
    marks = []
    for begin, end in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
        later = np.flatnonzero(~first[begin:end])
        firsts = earliest[later + begin]
        files = np.searchsorted(starts, firsts, side="right") - 1  # the file each first row lies in
        duplicates = {row: (f, first_row - int(starts[f])) for row, f, first_row in
                      zip(later.tolist(), files.tolist(), firsts.tolist(), strict=True)}  # fmt: skip
        marks.append((duplicates, {row - begin: why for row, why in clashes.items() if begin <= row < end}))
    return marks


def _earliest_rows(ids: pa.ChunkedArray) -> np.ndarray:
    """For each row, the first row that holds its id (a null's: the first null, as a set of ids counts None once)."""
    codes = pc.rank(ids, tiebreaker="dense").to_numpy()  # a sort's: equal ids (or nulls), one code of 1, 2, ...
    earliest = np.full(len(ids) + 1, len(ids), dtype=np.int64)
    np.minimum.at(earliest, codes, np.arange(len(ids)))  # each code's first row (np.unique: twice the memory)
    return earliest[codes]


def _marks_by_row(columns: list[list], suffix: str) -> list[Marks]:
    """_id_marks of id values (id_strings's), row after row: a Python dict of every id."""
    taken = _AudioPaths(suffix)
    marks = []
    for file, ids in enumerate(columns):
        duplicates: dict[int, tuple[int, int]] = {}
        clashes: dict[int, str] = {}
        for row, key in enumerate(ids):
            if key in taken.seen:
                duplicates[row] = taken.seen[key]
                continue
            reason = taken.meet(key, (file, row))
            if reason is not None:
                clashes[row] = reason
        marks.append((duplicates, clashes))
    return marks


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """The id column as strings or large strings (integers as their decimal string, dictionaries decoded), as
    id_strings gives them; None for ids of other types."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column
    return column.cast(pa.string()) if pa.types.is_integer(kind) else None


def _suffixed_folders(key: str, suffix: str) -> list[str]:
    """The folders id `key`'s audio file lies in whose names end in `suffix` (_AudioPaths.clash's)."""
    parts = key.split("/")
    return [folder for folder in ("/".join(parts[:k]) for k in range(1, len(parts))) if folder.endswith(suffix)]


def _found(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as numpy, null as False."""
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def id_strings(column: pa.ChunkedArray) -> list:
    """The id column as Python values: integers as their decimal string (dictionaries decoded), others as is."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_integer(kind):
        return [None if v is None else str(v) for v in column.to_pylist()]
    return column.to_pylist()


def _frames(n) -> int:
    """A row's n_frames for sizing shards: 0 for a null, NaN, negative or otherwise unusable value (the row
    itself is refused when read)."""
    try:
        value = float(n)
    except (TypeError, ValueError):
        return 0
    return int(value) if math.isfinite(value) and value > 0 else 0


def _cut(frames: list[int], target_frames: int) -> list[tuple[int, int]]:
    """Consecutive row ranges whose frames reach about the target (a range closes once it gets there)."""
    ranges: list[tuple[int, int]] = []
    start, size = 0, 0
    for row, n in enumerate(frames):
        if row > start and size + n / 2 > target_frames:
            ranges.append((start, row))
            start, size = row, 0
        size += n
    if len(frames) > start:
        ranges.append((start, len(frames)))
    return ranges


def _cut_packed(frames: list[int], target_frames: int, plan: ChunkPlan) -> list[tuple[int, int]]:
    """Consecutive row ranges of about the target whose rows pack into whole batches of `plan` (module doc).

    A range ends at the row, within `slack` frames of audio of the target (half a batch of rows, at most a quarter
    of the target), after which its rows, packed from the range's start, leave the fewest tape frames of their
    last batch empty (ties: the nearest to the target); a row that alone passes the window ends its range. The
    rest of a file within the window of the target is its last range, so rows appended to a file change only
    that one (a range's cut depends on the rows up to target + slack after its start, no further).
    """
    span = plan.batch * plan.length  # tape frames of one batch
    slack = min(plan.batch * plan.chunk_frames // 2, target_frames // 4)
    ranges: list[tuple[int, int]] = []
    start, rest = 0, sum(frames)
    while start < len(frames):
        if rest <= target_frames + slack:
            ranges.append((start, len(frames)))
            break
        tape, size = Tape(plan.chunk_frames, plan.context, plan.gap), 0
        best: tuple[int, int, int] | None = None  # (empty frames, distance to the target, stop)
        for row in range(start, len(frames)):
            tape.advance(frames[row])
            size += frames[row]
            if size > target_frames + slack:
                best = best or (0, 0, row + 1)
                break
            if size >= target_frames - slack:
                cut = (-(-tape.rows // plan.batch) * span - tape.position, abs(size - target_frames), row + 1)
                best = cut if best is None else min(best, cut)
        if best is None:  # unreachable: rest > target + slack, so the loop passed the window
            raise AssertionError("no cut found")
        ranges.append((start, best[2]))
        rest -= sum(frames[start : best[2]])
        start = best[2]
    return ranges


def _prefixes(files: list[str], root: str | None) -> dict[str, str]:
    """A readable name per file, its path below `root` without `.parquet`, folders joined by `__`."""
    if root is None:
        parents = [posixpath.dirname(f) if storage.is_url(f) else os.path.dirname(f) for f in files]
        root = os.path.commonpath(parents) if not any(map(storage.is_url, files)) else _common_url(parents)
    names = {}
    for f in files:
        rel = posixpath.relpath(f, root) if storage.is_url(f) else os.path.relpath(f, root)
        if rel.startswith(".."):
            rel = os.path.basename(f)
        rel = rel.replace(os.sep, "/").removesuffix(".parquet")
        names[f] = rel.replace("/", "__")
    return names


def _common_url(parents: list[str]) -> str:
    parts = [p.split("/") for p in parents]
    common = []
    for items in zip(*parts, strict=False):
        if len(set(items)) != 1:
            break
        common.append(items[0])
    return "/".join(common)


def shard_batches(shard: Shard, columns: list[str] | None = None, batch_size: int = 64) -> Iterator[pa.RecordBatch]:
    """The shard's rows, in order, `batch_size` (or fewer) at a time; only `columns` where given."""
    parquet = storage.parquet_file(shard.file)
    for group in shard.row_groups:
        yield from group_batches(shard, parquet, group, columns, batch_size)


def group_span(shard: Shard, parquet: pq.ParquetFile, group: int) -> tuple[int, int]:
    """(first, stop): the rows of row group `group`, counted within the group, that belong to the shard."""
    begin = sum(parquet.metadata.row_group(g).num_rows for g in range(group))
    end = begin + parquet.metadata.row_group(group).num_rows
    return max(begin, shard.start) - begin, max(min(end, shard.stop) - begin, 0)


def group_batches(shard: Shard, parquet: pq.ParquetFile, group: int, columns: list[str] | None = None,
                  batch_size: int = 64) -> Iterator[pa.RecordBatch]:  # fmt: skip
    """The shard's rows inside row group `group`, `batch_size` (or fewer) at a time."""
    first, stop = group_span(shard, parquet, group)
    position = 0
    for batch in parquet.iter_batches(batch_size=batch_size, row_groups=[group], columns=columns):
        begin, position = position, position + batch.num_rows
        lo, hi = max(begin, first), min(position, stop)
        if hi > lo:
            yield batch.slice(lo - begin, hi - lo)
        if position >= stop:
            break


def shard_table(shard: Shard, columns: list[str] | None = None) -> pa.Table:
    """The shard's rows as one table (only `columns` where given)."""
    parquet = storage.parquet_file(shard.file)
    table = parquet.read_row_groups(list(shard.row_groups), columns=columns)
    return table.slice(shard.start - shard.first_row, shard.rows)


def deal_round_robin(shards: list[Shard], actors: int) -> list[list[Shard]]:
    """Shards dealt to `actors` queues, largest first, round robin."""
    queues: list[list[Shard]] = [[] for _ in range(actors)]
    for i, shard in enumerate(sorted(shards, key=lambda s: -s.frames)):
        queues[i % actors].append(shard)
    return queues
