from pathlib import Path

from batchvoc.manifest import deal_round_robin, find_manifest_files, plan_shards, read_shard_rows
from batchvoc.manifest.rows import passthrough_table
from tests.conftest import mel_rows, write_manifest


def _three_files(tmp_path: Path) -> list[Path]:
    for k in range(3):
        rows = mel_rows(20, 4, frames=[10 + i for i in range(20)], prefix=f"f{k}")
        write_manifest(tmp_path / f"part{k}.parquet", rows, row_group_size=5)
    return find_manifest_files(tmp_path)


def test_shards_cover_every_row_once_in_row_ranges(tmp_path):
    files = _three_files(tmp_path)
    shards = plan_shards(files, target_frames=100)
    assert sum(s.rows for s in shards) == 60
    for path in files:
        ranges = [(s.start, s.stop) for s in shards if s.file == str(path)]
        assert ranges[0][0] == 0 and ranges[-1][1] == 20
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert len({s.name for s in shards}) == len(shards)
    # about equal audio: every shard within a row of the target (cut inside row groups of ~60 frames)
    assert all(s.frames <= 100 + 30 for s in shards), [s.frames for s in shards]
    assert all(s.frames >= 100 - 30 for s in shards[:-1] if s.stop < 20), [s.frames for s in shards]


def test_a_shard_can_be_smaller_than_a_row_group_and_reads_exactly_its_rows(tmp_path):
    rows = mel_rows(40, 4, frames=10)
    write_manifest(tmp_path / "m.parquet", rows, row_group_size=40)  # one row group of 400 frames
    shards = plan_shards(find_manifest_files(tmp_path), target_frames=35)
    assert len(shards) > 8 and {s.row_groups for s in shards} == {(0,)}
    read = [r.id for s in shards for r in read_shard_rows(s, 4)]
    assert read == [r["id"] for r in rows]
    middle = shards[3]
    assert passthrough_table(middle).column("id").to_pylist() == [r["id"] for r in rows[middle.start : middle.stop]]


def test_names_do_not_shift_when_rows_are_appended(tmp_path):
    rows = mel_rows(30, 4, frames=[5 + i % 7 for i in range(30)])
    write_manifest(tmp_path / "m.parquet", rows[:20], row_group_size=6)
    before = [s.name for s in plan_shards(find_manifest_files(tmp_path), 30, root=tmp_path)]
    write_manifest(tmp_path / "m.parquet", rows, row_group_size=8)  # rewritten, other row groups
    after = [s.name for s in plan_shards(find_manifest_files(tmp_path), 30, root=tmp_path)]
    assert after[: len(before) - 1] == before[:-1] and len(after) > len(before)


def test_plan_is_deterministic_and_names_are_stable(tmp_path):
    files = _three_files(tmp_path)
    assert plan_shards(files, 150) == plan_shards(files, 150)
    assert [s.name for s in plan_shards(files, 150)][:2] == ["part0.r000000000-000000010", "part0.r000000010-000000017"]


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
    assert names == {"x__m.r000000000-000000002", "y__m.r000000000-000000002"}


def test_deal_round_robin_balances_largest_first(tmp_path):
    shards = plan_shards(_three_files(tmp_path), target_frames=60)
    queues = deal_round_robin(shards, 2)
    assert sorted(s.name for q in queues for s in q) == sorted(s.name for s in shards)
    loads = [sum(s.frames for s in q) for q in queues]
    assert max(loads) - min(loads) <= max(s.frames for s in shards)
