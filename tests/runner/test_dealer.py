"""The dealer's shard order: an actor goes on along its file (its Parquet reader continues), actors take
different files, every shard is dealt once."""

import pytest

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


def test_the_actors_steps_reach_the_timeline_as_they_are_learnt_once_each_and_earliest(caplog):
    """A job's "first shard begun" and "first audio written" come from the actors (their progress polls, their
    shards' stats): the driver's timeline logs each when dealing first learns it, so the console's steps read in
    time order, and keeps the earliest an actor reports; the job's end adds nothing of its own."""
    from batchvoc.runner.dealer import Dealt
    from batchvoc.runner.driver import Timeline

    caplog.set_level("INFO", "batchvoc")
    timeline = Timeline()
    dealt = Dealt(on_step=timeline.mark_earliest)
    dealt.shard_begun_at(None)
    dealt.audio_written_at(None)  # a poll before anything happened
    assert timeline.events == {}
    t0 = timeline.origin
    dealt.shard_begun_at(t0 + 5.0)
    dealt.audio_written_at(t0 + 7.0)
    dealt.shard_begun_at(t0 + 6.0)  # a later shard, or another actor's later start: not the first
    dealt.audio_written_at(t0 + 6.5)  # another actor wrote audio earlier than the first report said
    assert timeline.events == {"first shard begun": 5.0, "first audio written": 6.5}
    assert dealt.first_audio_at == t0 + 6.5 and dealt.first_shard_at == t0 + 5.0
    logged = [r.getMessage() for r in caplog.records if "after the process started" in r.getMessage()]
    assert logged == ["5.0 s after the process started: first shard begun",
                      "7.0 s after the process started: first audio written"]  # fmt: skip


def test_the_timelines_lines_never_go_back_in_time_and_a_step_learnt_late_says_its_own_time(caplog):
    """The console read `6.6 s ...: actors created`, then `6.1 s ...: actor-0 process started` (a demo job): an
    actor's first steps come with its ready answer, Ray's start once the plan stands, an actor's first shard with
    its next report. Each line is now stamped when it is logged where its own time is earlier than the last
    line's, saying its own time; an actor's steps before its ready are said in its ready line. The
    recorded times (summary.json) are the steps' own."""
    import re
    import time

    from batchvoc.runner.driver import Timeline

    caplog.set_level("INFO", "batchvoc")
    timeline = Timeline()
    now = time.time()
    t0 = timeline.origin = now - 20.0  # a process 20 s old
    timeline.mark("Ray starting", now - 9.0)  # the first line: its own time
    timeline.mark("actors created")
    timeline.mark("actor-0 ready", steps={"process started": now - 2.0, "imported": now - 1.0, "created": now - 0.5})
    timeline.mark("Ray started", now - 3.0)  # learnt late
    timeline.mark_earliest("first shard begun", now - 0.1)
    expected = {"Ray starting": now - 9.0, "actor-0 process started": now - 2.0, "actor-0 imported": now - 1.0,
                "actor-0 created": now - 0.5, "Ray started": now - 3.0, "first shard begun": now - 0.1}  # fmt: skip
    for step, at in expected.items():
        assert timeline.events[step] == pytest.approx(at - t0, abs=2e-3), step
    logged = [r.getMessage() for r in caplog.records if "after the process started" in r.getMessage()]
    times = [float(line.split(" s after", 1)[0]) for line in logged]
    assert times == sorted(times), logged
    assert [line.split(": ", 1)[1] for line in logged] == [
        "Ray starting", "actors created",
        f"actor-0 ready; its process started at {now - 2.0 - t0:.1f} s, imported at {now - 1.0 - t0:.1f} s, created "
        f"at {now - 0.5 - t0:.1f} s",
        f"Ray started; it happened at {now - 3.0 - t0:.1f} s",
        f"first shard begun; it happened at {now - 0.1 - t0:.1f} s"]  # fmt: skip
    assert re.match(rf"{times[1]:.1f} s after the process started: Ray started", logged[3]), logged


def test_an_engine_that_cannot_be_compiled_is_named_in_one_line_with_the_way_round_it():
    """BigVGAN's per-utterance spans cannot be compiled by Inductor on a CPU (torch 2.13): a job with
    engine.backend=inductor ended 'no actor could start: InductorError: Set TORCHDYNAMO_VERBOSE=1 for the internal
    stack trace ...', Dynamo's advice on its own logs, not the error, nor what to do. A real compile failure."""
    import pytest
    import torch

    from batchvoc.engines import build_engine
    from batchvoc.models import load_vocoder
    from batchvoc.runner.dealer import _start_reason

    model, preset = load_vocoder("bigvgan_v2_24khz_100band_256x", "random", {"upsample_initial_channel": 64})
    try:
        build_engine(model, preset, backend="inductor", shapes=[(1, 96)])
    except Exception as err:  # noqa: BLE001 - Dynamo's, checked below
        assert type(err).__module__.startswith("torch._"), repr(err)
        said = _start_reason(err)
    else:
        pytest.skip(f"torch {torch.__version__} compiles BigVGAN's spans on a CPU")
    assert "\n" not in said and "TORCHDYNAMO" not in said, said
    assert said.startswith("the engine could not be compiled (AssertionError: vr must not be None"), said
    assert said.endswith("engine.backend=eager runs the model without compiling it"), said
