"""The dealer's shard order: an actor goes on along its file (its Parquet reader continues), actors take
different files, every shard is dealt once."""

from batchvoc.manifest import Shard
from batchvoc.runner.dealer import ShardQueue


def _shards(files: dict[str, int], rows: int = 10) -> list[Shard]:
    return [Shard(f"{f}{k}", f, k * rows, (k + 1) * rows, (0,), 0, rows) for f, n in files.items() for k in range(n)]


def test_one_actor_goes_along_each_file_in_row_order():
    queue = ShardQueue(_shards({"a": 3, "b": 2}))
    last, order = None, []
    while queue:
        last = queue.next_for(last, [])
        order.append(last.name)
    assert order == ["a0", "a1", "a2", "b0", "b1"]


def test_two_actors_take_different_files_and_each_shard_once():
    queue = ShardQueue(_shards({"a": 4, "b": 4}))
    last = [None, None]
    dealt = [[], []]
    for turn in [0, 0, 1, 1, 0, 1, 1, 0]:  # two in flight each at first, then as they come back
        last[turn] = queue.next_for(last[turn], [last[1 - turn]])
        dealt[turn].append(last[turn].name)
    assert dealt == [["a0", "a1", "a2", "a3"], ["b0", "b1", "b2", "b3"]]
    assert not queue


def test_a_shard_put_back_is_dealt_next():
    shards = _shards({"a": 3})
    queue = ShardQueue(shards)
    first = queue.next_for(None, [])
    queue.next_for(first, [])
    queue.put_back(first)
    assert queue.next_for(None, []).name == "a0"
    assert [s.name for s in queue] == ["a2"]
