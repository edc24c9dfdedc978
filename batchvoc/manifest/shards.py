"""Shard planning: cut manifests into runs of whole row groups of about equal audio, and deal them out."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Frames assumed per row where a manifest has no n_frames column (mel_path rows): only sizes shards.
FRAMES_PER_ROW_GUESS = 500


@dataclass(frozen=True)
class Shard:
    """Consecutive row groups of one manifest file; the unit of work, of output files and of restart."""

    name: str
    file: str
    row_groups: tuple[int, ...]
    rows: int
    frames: int
    duplicate_rows: tuple[int, ...] = field(default=())  # rows (shard-relative) whose id was seen before


@dataclass
class _Group:
    index: int
    rows: int
    frames: int
    duplicates: list[int]


def plan_shards(files: list[Path], target_frames: int) -> list[Shard]:
    """Shards of about `target_frames` frames each, in file and row-group order; deterministic for a manifest."""
    names = _shard_prefixes(files)
    seen: set[str] = set()
    shards: list[Shard] = []
    for path in files:
        groups = _row_groups(path, seen)
        for run in _cut(groups, target_frames):
            first, last = run[0].index, run[-1].index
            offset, duplicates = 0, []
            for group in run:
                duplicates += [offset + row for row in group.duplicates]
                offset += group.rows
            shards.append(
                Shard(
                    name=f"{names[path]}.rg{first:04d}-{last:04d}",
                    file=str(path),
                    row_groups=tuple(g.index for g in run),
                    rows=offset,
                    frames=sum(g.frames for g in run),
                    duplicate_rows=tuple(duplicates),
                )
            )
    return shards


def _row_groups(path: Path, seen: set[str]) -> list[_Group]:
    """Rows, frames and duplicate-id rows of each row group; `seen` collects ids across files."""
    parquet = pq.ParquetFile(path)
    has_frames = "n_frames" in parquet.schema_arrow.names
    columns = ["id", "n_frames"] if has_frames else ["id"]
    groups = []
    for index in range(parquet.num_row_groups):
        table = parquet.read_row_group(index, columns=columns)
        ids = id_strings(table.column("id"))
        if has_frames:
            frames = sum(_frames(n) for n in table.column("n_frames").to_pylist())
        else:
            frames = len(ids) * FRAMES_PER_ROW_GUESS
        duplicates = []
        for row, key in enumerate(ids):
            if key in seen:
                duplicates.append(row)
            seen.add(key)
        groups.append(_Group(index, len(ids), frames, duplicates))
    return [g for g in groups if g.rows]


def _frames(n) -> int:
    """A row's n_frames for sizing shards: 0 for a null, NaN, negative or otherwise unusable value (the row
    itself is refused when read)."""
    try:
        value = float(n)
    except (TypeError, ValueError):
        return 0
    return int(value) if math.isfinite(value) and value > 0 else 0


def _cut(groups: list[_Group], target_frames: int) -> list[list[_Group]]:
    """Consecutive runs whose frames reach about the target (a run closes once it gets there)."""
    runs: list[list[_Group]] = []
    current: list[_Group] = []
    size = 0
    for group in groups:
        if current and size + group.frames / 2 > target_frames:
            runs.append(current)
            current, size = [], 0
        current.append(group)
        size += group.frames
    if current:
        runs.append(current)
    return runs


def id_strings(column: pa.ChunkedArray) -> list:
    """The id column as Python values: integers as their decimal string (dictionaries decoded), others as is."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_integer(kind):
        return [None if v is None else str(v) for v in column.to_pylist()]
    return column.to_pylist()


def _shard_prefixes(files: list[Path]) -> dict[Path, str]:
    """A readable, unique name per file: its stem, or its path below the common folder where stems clash."""
    stems = Counter(f.stem for f in files)
    if all(count == 1 for count in stems.values()):
        return {f: f.stem for f in files}
    root = Path(os.path.commonpath([str(f.parent) for f in files]))
    return {f: str(f.relative_to(root).with_suffix("")).replace(os.sep, "__") for f in files}


def deal_round_robin(shards: list[Shard], actors: int) -> list[list[Shard]]:
    """Shards dealt to `actors` queues, largest first, round robin."""
    queues: list[list[Shard]] = [[] for _ in range(actors)]
    for i, shard in enumerate(sorted(shards, key=lambda s: -s.frames)):
        queues[i % actors].append(shard)
    return queues
