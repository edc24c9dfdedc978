from pathlib import Path

from batchvoc.manifest import deal_round_robin, find_manifest_files, plan_shards
from tests.conftest import mel_rows, write_manifest


def _three_files(tmp_path: Path) -> list[Path]:
    for k in range(3):
        rows = mel_rows(20, 4, frames=[10 + i for i in range(20)], prefix=f"f{k}")
        write_manifest(tmp_path / f"part{k}.parquet", rows, row_group_size=5)
    return find_manifest_files(tmp_path)


def test_shards_cover_every_row_once_in_whole_row_groups(tmp_path):
    files = _three_files(tmp_path)
    shards = plan_shards(files, target_frames=100)
    assert sum(s.rows for s in shards) == 60
    for path in files:
        groups = [g for s in shards if s.file == str(path) for g in s.row_groups]
        assert groups == [0, 1, 2, 3]
    assert len({s.name for s in shards}) == len(shards)
    # about equal audio: every shard within a row group of the target
    assert all(50 <= s.frames <= 200 for s in shards), [s.frames for s in shards]


def test_plan_is_deterministic_and_names_are_stable(tmp_path):
    files = _three_files(tmp_path)
    assert plan_shards(files, 150) == plan_shards(files, 150)
    assert [s.name for s in plan_shards(files, 150)][:2] == ["part0.rg0000-0001", "part0.rg0002-0002"]


def test_duplicate_ids_are_marked_on_their_later_rows(tmp_path):
    rows = mel_rows(6, 4)
    rows[4]["id"] = rows[1]["id"]
    write_manifest(tmp_path / "a.parquet", rows[:3], row_group_size=2)
    write_manifest(tmp_path / "b.parquet", rows[3:], row_group_size=2)
    shards = plan_shards(find_manifest_files(tmp_path), target_frames=10_000)
    marked = {(s.file.split("/")[-1], d) for s in shards for d in s.duplicate_rows}
    assert marked == {("b.parquet", 1)}


def test_same_stem_in_two_folders_gets_two_names(tmp_path):
    write_manifest(tmp_path / "x" / "m.parquet", mel_rows(2, 4, prefix="a"))
    write_manifest(tmp_path / "y" / "m.parquet", mel_rows(2, 4, prefix="b"))
    names = {s.name for s in plan_shards(find_manifest_files(tmp_path), 1000)}
    assert names == {"x__m.rg0000-0000", "y__m.rg0000-0000"}


def test_deal_round_robin_balances_largest_first(tmp_path):
    shards = plan_shards(_three_files(tmp_path), target_frames=60)
    queues = deal_round_robin(shards, 2)
    assert sorted(s.name for q in queues for s in q) == sorted(s.name for s in shards)
    loads = [sum(s.frames for s in q) for q in queues]
    assert max(loads) - min(loads) <= max(s.frames for s in shards)
