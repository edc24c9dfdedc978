"""The audio of shards planned without n_frames (mel_path rows): estimated from a few .npy headers.

Such shards are cut at FRAMES_PER_ROW_GUESS frames a row (their names must not depend on the mels), which made
the progress bar's total that guess times the rows: 29 s for five rows of 1 s. The frames of SAMPLE_ROWS rows
spread over those shards, read from their .npy headers (a few hundred bytes each; no mel is read for it), give
the mean frames a row instead. The dealer corrects each shard's audio once it is done (runner/dealer.AudioTotal).
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from dataclasses import replace
from itertools import accumulate

from batchvoc import storage
from batchvoc.errors import counted
from batchvoc.manifest.rows import npy_frames
from batchvoc.manifest.shards import Shard

log = logging.getLogger(__name__)
SAMPLE_ROWS = 16


def estimate_frames(shards: list[Shard], sample_rows: int = SAMPLE_ROWS) -> list[Shard]:
    """`shards` with each guessed one's frames (`frames_guessed`) set to its rows times the mean frames of up to
    `sample_rows` mel_path rows spread over them; as they were where none of those rows could be read (inline
    nested mels, paths only the workers can reach)."""
    guessed = [s for s in shards if s.frames_guessed]
    frames = sampled_frames(guessed, sample_rows)
    if not frames:
        return shards
    mean = sum(frames) / len(frames)
    log.info("%s no n_frames: %.0f frames a row, from %s", "1 shard has" if len(guessed) == 1 else
             f"{len(guessed)} shards have", mean, counted(len(frames), ".npy header"))  # fmt: skip
    return [replace(s, frames=round(s.rows * mean)) if s.frames_guessed else s for s in shards]


def sampled_frames(shards: list[Shard], sample_rows: int) -> list[int]:
    """The frames of up to `sample_rows` rows spread evenly over `shards`' rows, each from its .npy header; rows
    that cannot be read (and every row of a file without a mel_path column, or with a mel column) left out."""
    picks: dict[int, list[int]] = {}
    for index, row in sample_positions(shards, sample_rows):
        picks.setdefault(index, []).append(row)
    groups: dict[tuple[str, tuple[int, ...]], list | None] = {}  # shards of one row group read its paths once
    frames: list[int] = []
    for index, rows in picks.items():
        frames += _shard_frames(shards[index], rows, groups)
    return frames


def sample_positions(shards: list[Shard], count: int) -> list[tuple[int, int]]:
    """(shard index, row within the shard) of `count` rows spread evenly over the shards' rows (every row where
    they hold fewer), in order."""
    ends = list(accumulate(s.rows for s in shards))
    total = ends[-1] if ends else 0
    count = min(count, total)
    picked = [(2 * i + 1) * total // (2 * count) for i in range(count)]  # the middles of count equal parts
    positions = []
    for at in picked:
        index = bisect_right(ends, at)
        positions.append((index, at - (ends[index] - shards[index].rows)))
    return positions


def _shard_frames(shard: Shard, rows: list[int], groups: dict[tuple[str, tuple[int, ...]], list | None]) -> list[int]:
    """The frames of the shard's `rows` that name a readable .npy; `groups`: the mel_path values of the row groups
    read so far (None: none to read there)."""
    key = (shard.file, shard.row_groups)
    if key not in groups:
        groups[key] = _group_paths(shard)
    paths = groups[key]
    if paths is None:
        return []
    frames = []
    for row in rows:
        try:
            frames.append(npy_frames(paths[shard.start - shard.first_row + row], shard.file))
        except Exception as err:  # noqa: BLE001 - the row's own read gives it its reason
            log.debug("no frames estimate from %s row %d: %s", shard.name, row, err)
    return frames


def _group_paths(shard: Shard) -> list | None:
    """The mel_path values of the shard's row groups; None where its file has no mel_path column to read (or a mel
    column, which is read instead) or cannot be read."""
    try:
        parquet = storage.parquet_file(shard.file)
        names = parquet.schema_arrow.names
        if "mel_path" not in names or "mel" in names:
            return None
        return parquet.read_row_groups(list(shard.row_groups), columns=["mel_path"]).column("mel_path").to_pylist()
    except Exception as err:  # noqa: BLE001 - an estimate: the job reports the file's fault when it reads it
        log.debug("no frames estimate from %s: %s", shard.name, err)
        return None
