from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from batchvoc.chunking import ChunkPlan, packed_rows
from batchvoc.manifest import deal_round_robin, find_manifest_files, plan_shards, read_shard_rows
from batchvoc.manifest.rows import passthrough_table
from batchvoc.manifest.shards import ManifestRows
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
    marked = {(s.file.split("/")[-1], row, earlier) for s in shards for row, earlier in s.duplicate_rows}
    assert marked == {("b.parquet", 1, f"row 1 of {tmp_path / 'a.parquet'}")}  # where its id first appears


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


# --- shards cut for the engine's batches (issue 14) ------------------------------------------------------------

PACKING = ChunkPlan(chunk_frames=100, context=6, batch=4, log_mel_floor=-11.5, hop=1)  # rows of 112 frames


def _tts_file(path: Path, count: int = 200, seed: int = 0) -> list[dict]:
    """Utterances of 60-140 frames (about one engine row each), like 10 s ones in rows of 1000 frames."""
    frames = np.random.default_rng(seed).integers(60, 141, size=count).tolist()
    rows = mel_rows(count, 2, frames=frames, prefix=path.stem, seed=seed)
    write_manifest(path, rows, row_group_size=50)
    return rows


def _batches(shard, frames: list[int], plan: ChunkPlan = PACKING) -> int:
    return -(-packed_rows(frames[shard.start : shard.stop], plan) // plan.batch)


def test_shards_cut_for_a_packing_fill_whole_batches_within_half_a_batch_of_the_target(tmp_path):
    rows = _tts_file(tmp_path / "m.parquet")
    frames = [r["n_frames"] for r in rows]
    files = find_manifest_files(tmp_path)
    target = 2000  # ~20 rows: 5 batches of 4
    by_audio = plan_shards(files, target)
    packed = plan_shards(files, target, packing=PACKING)
    assert [s.start for s in packed][0] == 0 and packed[-1].stop == len(rows)
    assert all(a.stop == b.start for a, b in zip(packed, packed[1:], strict=False))
    slack = min(PACKING.batch * PACKING.chunk_frames // 2, target // 4)
    assert all(target - slack <= s.frames <= target + slack for s in packed[:-1]), [s.frames for s in packed]
    assert packed[-1].frames <= target + slack  # the rest of the file
    # every shard's rows end a batch (but the file's last, its rest): at most one row left empty
    for shard in packed[:-1]:
        rows_used = packed_rows(frames[shard.start : shard.stop], PACKING)
        assert _batches(shard, frames) * PACKING.batch - rows_used <= 1, shard.name
    one_stream = -(-packed_rows(frames, PACKING) // PACKING.batch)
    before, after = sum(_batches(s, frames) for s in by_audio), sum(_batches(s, frames) for s in packed)
    assert after < before and after <= one_stream + 1, (before, after, one_stream)


def test_a_packing_keeps_names_when_rows_are_appended_and_the_plan_deterministic(tmp_path):
    rows = _tts_file(tmp_path / "m.parquet", count=200)
    write_manifest(tmp_path / "m.parquet", rows[:120], row_group_size=50)
    before = [s.name for s in plan_shards(find_manifest_files(tmp_path), 2000, root=tmp_path, packing=PACKING)]
    write_manifest(tmp_path / "m.parquet", rows, row_group_size=64)  # rewritten, other row groups
    files = find_manifest_files(tmp_path)
    after = [s.name for s in plan_shards(files, 2000, root=tmp_path, packing=PACKING)]
    assert after[: len(before) - 1] == before[:-1] and len(after) > len(before)
    assert plan_shards(files, 2000, packing=PACKING) == plan_shards(files, 2000, packing=PACKING)


def test_a_packing_of_batch_one_or_guessed_frames_cuts_on_audio_alone(tmp_path):
    _tts_file(tmp_path / "a.parquet")
    files = find_manifest_files(tmp_path)
    one_row = ChunkPlan(100, 6, 1, -11.5, 1)  # a CPU's: no batch is ever part-filled beyond its row
    assert plan_shards(files, 2000, packing=one_row) == plan_shards(files, 2000)
    paths = tmp_path / "paths"
    paths.mkdir()
    for i in range(60):
        np.save(paths / f"u{i}.npy", np.zeros((2, 100), np.float32))
    write_manifest(paths / "p.parquet", [dict(id=f"u{i}", mel_path=f"u{i}.npy") for i in range(60)])
    guessed = find_manifest_files(paths / "p.parquet")
    assert plan_shards(guessed, 2000, packing=PACKING) == plan_shards(guessed, 2000)


def test_a_recut_for_a_packing_keeps_the_audio_cut_where_the_packing_does_not_change_it(tmp_path):
    """ManifestRows.recut gives shards(target, packing) from the cut on audio: the file with n_frames is cut anew
    for a packing of batches, the file without keeps its shards (and the frames given them since, as the driver's
    estimate); a packing of batch 1, or none, keeps every shard."""
    _tts_file(tmp_path / "a.parquet")
    for i in range(60):
        np.save(tmp_path / f"u{i}.npy", np.zeros((2, 100), np.float32))
    write_manifest(tmp_path / "p.parquet", [dict(id=f"u{i}", mel_path=f"u{i}.npy") for i in range(60)])
    rows = ManifestRows.read(find_manifest_files(tmp_path), root=tmp_path)
    estimated = {s.name: s.rows * 100 for s in rows.shards(2000) if s.frames_guessed}  # as estimate_frames does
    on_audio = [replace(s, frames=estimated[s.name]) if s.frames_guessed else s for s in rows.shards(2000)]
    packed = rows.recut(on_audio, 2000, PACKING)
    by_packing = rows.shards(2000, PACKING)
    assert packed == [replace(s, frames=estimated[s.name]) if s.frames_guessed else s for s in by_packing]
    assert [s.name for s in packed if not s.frames_guessed] != [s.name for s in on_audio if not s.frames_guessed]
    kept = [s for s in packed if s.frames_guessed]
    assert len(kept) == 15 and all(any(s is a for a in on_audio) for s in kept)  # 60 rows at 4 guessed rows a shard
    assert rows.recut(on_audio, 2000, ChunkPlan(100, 6, 1, -11.5, 1)) == rows.recut(on_audio, 2000, None) == on_audio


def _ids_manifest(path: Path, ids: list[str]) -> Path:
    rows = mel_rows(len(ids), 4, frames=3)
    for row, key in zip(rows, ids, strict=True):
        row["id"] = key
    return write_manifest(path, rows, row_group_size=2)


def _refused(shards) -> dict[str, str]:
    """id -> error of every row the reader refuses, read back through the shards as a job reads them."""
    return {row.id: row.error for s in shards for row in read_shard_rows(s, 4) if row.error}


@pytest.mark.parametrize(
    "ids, later, other",
    [
        (["a", "x", "a.wav/b"], "a.wav/b", "a"),  # a folder where an earlier id's file is
        (["a.wav/b", "x", "a"], "a", "a.wav/b"),  # a file where an earlier id's folder is
        (["a/b", "a/b.wav/c"], "a/b.wav/c", "a/b"),  # deeper: the clash below a folder they share
        (["a/b.wav/c/d", "a/b"], "a/b", "a/b.wav/c/d"),
        (["s/t.wav/u", "s/t.wav/v", "s/t"], "s/t", "s/t.wav/u"),  # the first id through the folder is named
    ],
)
def test_ids_whose_audio_paths_clash_fail_the_later_row_naming_the_earlier_id(tmp_path, ids, later, other):
    shards = plan_shards(find_manifest_files(_ids_manifest(tmp_path / "m.parquet", ids)), 10**9)
    refused = _refused(shards)
    assert list(refused) == [later], refused
    assert f"id {later!r}:" in refused[later] and f"id {other!r} (earlier" in refused[later]
    assert "\n" not in refused[later]
    (shard,) = shards
    assert [row for row, _ in shard.clashing_rows] == [ids.index(later)] and shard.duplicate_rows == ()


def test_a_clash_across_two_manifest_files_fails_the_row_of_the_later_file(tmp_path):
    _ids_manifest(tmp_path / "a.parquet", ["u1", "spk/x.wav/y", "u2"])
    _ids_manifest(tmp_path / "b.parquet", ["u3", "spk/x", "u4"])
    shards = plan_shards(find_manifest_files(tmp_path), 10**9)
    refused = _refused(shards)
    assert list(refused) == ["spk/x"] and "'spk/x.wav/y'" in refused["spk/x"]
    marked = {(Path(s.file).name, row) for s in shards for row, _ in s.clashing_rows}
    assert marked == {("b.parquet", 1)}


def test_the_audio_extension_is_part_of_the_clash(tmp_path):
    """`x` and `x/y` make x.wav beside folder x/: no clash; `a` and `a.flac/b` clash in FLAC only."""
    files = find_manifest_files(_ids_manifest(tmp_path / "m.parquet", ["x", "x/y", "a", "a.flac/b", "c.wav/d"]))
    assert _refused(plan_shards(files, 10**9)) == {}
    as_flac = _refused(plan_shards(files, 10**9, extension="flac"))
    assert list(as_flac) == ["a.flac/b"] and "'a'" in as_flac["a.flac/b"]


def test_ids_refused_for_their_own_reasons_take_no_path_and_a_duplicate_stays_a_duplicate(tmp_path):
    ids = ["a.wav/../b", "a", "k", "k.wav/z", "k.wav/z"]
    (shard,) = plan_shards(find_manifest_files(_ids_manifest(tmp_path / "m.parquet", ids)), 10**9)
    errors = [row.error for row in read_shard_rows(shard, 4)]
    assert "leaves the output folder" in errors[0] and errors[1] is None  # its own reason; `a` after it is fine
    assert errors[2] is None and "'k'" in errors[3]  # the first `k.wav/z` clashes, the second is a duplicate
    first, here = f"row 3 of {shard.file}", f"row 4 of {shard.file}"
    assert errors[4] == f"id 'k.wav/z' appears earlier in the manifest, at {first} ({here})"
    assert shard.duplicate_rows == ((4, first),) and [row for row, _ in shard.clashing_rows] == [3]


@pytest.mark.parametrize("unsafe", ["a.wav//b", "a.wav/../b", "a.wav/./b", "a.wav/b\nc", "a.wav/b\\c", "a.wav/\x85"])
def test_an_id_refused_for_its_own_reason_makes_no_folder_for_a_later_clash_to_hide_behind(tmp_path, unsafe):
    """`a.wav/c` needs folder a.wav where `a`'s file goes, whatever refused id passed through a.wav before them."""
    ids = [unsafe, "a.wav/c", "a"]
    (shard,) = plan_shards(find_manifest_files(_ids_manifest(tmp_path / "m.parquet", ids)), 10**9)
    refused = _refused([shard])
    assert list(refused) == [unsafe, "a"] and "(earlier" not in refused[unsafe]
    assert "id 'a.wav/c' (earlier" in refused["a"]
    assert [row for row, _ in shard.clashing_rows] == [2]


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_the_planners_id_marks_are_those_of_the_row_by_row_check(suffix):
    """shards._id_marks (Arrow, at once) finds the duplicate rows (with where each id first appears) and clashing
    rows _marks_by_row (a dict, row by row) does: random ids of a few parts (clashing, unsafe, null, duplicate,
    integer), over files of each id type."""
    from batchvoc.manifest.shards import _id_marks, _marks_by_row, id_strings

    rng = np.random.default_rng(7)
    parts = ["a", "a.wav", "b.flac", "c", "..", "", ".", "d.wav"]
    for _ in range(200):
        columns = []
        for _ in range(rng.integers(1, 4)):
            n = int(rng.integers(0, 12))
            if rng.random() < 0.2:  # integer ids, some equal to another file's text ids
                columns.append(pa.chunked_array([pa.array([int(v) for v in rng.integers(0, 5, n)], pa.int64())]))
                continue
            ids = ["/".join(rng.choice(parts, rng.integers(1, 4))) for _ in range(n)]
            ids = [None if rng.random() < 0.1 else str(rng.integers(0, 5)) if rng.random() < 0.1 else i for i in ids]
            kind = pa.large_string() if rng.random() < 0.2 else pa.string()
            column = pa.chunked_array([pa.array(ids[:3], kind), pa.array(ids[3:], kind)])
            columns.append(column.dictionary_encode() if rng.random() < 0.3 else column)
        assert _id_marks(columns, suffix) == _marks_by_row([id_strings(c) for c in columns], suffix), columns


def test_the_planners_frames_are_those_of_each_row():
    """shards._frames_of (a column at once) gives _frames of every value: nulls, NaN, infinities, negative, huge,
    fractional, float16, unsigned and text values."""
    from batchvoc.manifest.shards import _frames, _frames_of

    columns = [
        pa.array([1, None, -3, 0, 2**63 - 1, 2**53 + 1], pa.int64()),
        pa.array([2**64 - 1, 5], pa.uint64()),
        pa.array([1.9, float("nan"), float("inf"), -float("inf"), -2.5, None, 1e300, 3e18], pa.float64()),
        pa.array([1.5, 700.25, None], pa.float32()),
        pa.array([np.float16(2.5), None], pa.float16()),
        pa.array(["12", " 7 ", "1_000", "x", None, "1e30", "-4"], pa.string()),
    ]
    for column in columns:
        chunked = pa.chunked_array([column])
        assert list(_frames_of(chunked)) == [_frames(n) for n in column.to_pylist()], column
