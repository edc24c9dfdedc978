"""Shards of a manifest without n_frames (mel_path rows): their audio estimated from a few .npy headers."""

from pathlib import Path

import numpy as np

from batchvoc.manifest import find_manifest_files, plan_shards
from batchvoc.manifest.estimate import estimate_frames, sample_positions
from batchvoc.manifest.shards import FRAMES_PER_ROW_GUESS
from tests.conftest import mel_rows, write_manifest


def _npy_manifest(folder: Path, frames: list[int], extra: list[str] = ()) -> Path:
    """A manifest of id + mel_path only (no n_frames), one .npy of `frames[i]` frames a row; `extra` paths
    (unreadable ones) appended as rows of their own."""
    (folder / "mels").mkdir(parents=True)
    rows = []
    for i, n in enumerate(frames):
        np.save(folder / "mels" / f"u{i}.npy", np.full((1, 80, n), -6.0, np.float32))  # size-1 axes squeezed
        rows.append(dict(id=f"u{i}", mel_path=f"mels/u{i}.npy"))
    rows += [dict(id=f"x{i}", mel_path=path) for i, path in enumerate(extra)]
    return write_manifest(folder / "m.parquet", rows, row_group_size=4)  # shards across row groups


def test_few_rows_are_read_from_their_headers_exactly(tmp_path):
    """Five rows of ~1 s: the plan said 29 s (FRAMES_PER_ROW_GUESS a row), their headers say 5 s."""
    frames = [86, 90, 80, 88, 86]
    manifest = _npy_manifest(tmp_path, frames, extra=["mels/none.npy", "../outside.npy", ""])
    planned = plan_shards(find_manifest_files(manifest), 10**9)
    assert [s.frames for s in planned] == [8 * FRAMES_PER_ROW_GUESS] and planned[0].frames_guessed
    (shard,) = estimate_frames(planned)
    assert shard.frames == round(8 * sum(frames) / 5)  # the unreadable rows left out of the mean
    assert (shard.name, shard.rows) == (planned[0].name, planned[0].rows)  # the plan itself stays as it was


def test_many_rows_are_sampled_over_every_shard(tmp_path):
    frames = np.random.default_rng(0).integers(40, 200, 60).tolist()
    planned = plan_shards(find_manifest_files(_npy_manifest(tmp_path, frames)), 3 * FRAMES_PER_ROW_GUESS)
    shards = estimate_frames(planned)
    assert len(shards) == 20 and [s.name for s in shards] == [s.name for s in planned]
    assert abs(sum(s.frames for s in shards) / sum(frames) - 1) < 0.2
    sampled = [frames[planned[index].start + row] for index, row in sample_positions(planned, 16)]
    assert [s.frames for s in shards] == [round(s.rows * sum(sampled) / 16) for s in planned]  # those rows' headers
    assert len({index for index, _ in sample_positions(planned, 16)}) == 16  # 16 shards of the 20, not the first


def test_shards_with_n_frames_or_inline_mels_are_left_as_planned(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet", mel_rows(6, 80, frames=[10, 20, 30, 40, 50, 60]))
    planned = plan_shards(find_manifest_files(manifest), 10**9)
    assert estimate_frames(planned) == planned and planned[0].frames == 210 and not planned[0].frames_guessed


def test_sample_positions_spread_over_the_rows():
    from batchvoc.manifest import Shard

    shards = [Shard(f"s{k}", "f", 10 * k, 10 * k + 10, (0,), 0, 10) for k in range(3)]
    assert sample_positions(shards, 3) == [(0, 5), (1, 5), (2, 5)]
    assert sample_positions(shards[:1], 16) == [(0, i) for i in range(10)]
    assert sample_positions([], 16) == []
