"""One shard through the staged pipeline: read -> check -> vocode -> write, with bounded channels between them.

    stats = run_shard(shard, stream, sink, MelChecks.for_preset(preset, ...), max_mel_error=0.8, progress=...,
                      info=dict(actor="actor-0", device=..., backend=..., precision=..., ready_s=..., ...))

Reading and checking run in threads of their own ahead of the device, the vocode stage in the device feed's thread
(stages/vocode.py: shards run at once share its batches), writing in a few threads behind it; data moves one way.
Times: read_s and check_s are those threads' busy time; vocode_s the device's time from taking up the shard's first
row to its last result, not spent waiting for checked rows (a batch shared with the next shard counts in both);
write_s the writers' summed time; wall_s the whole shard; first_row_s and first_audio_s: when its first good row
reached the device and its first audio left it, from the shard's start. packing_efficiency: its kept frames over
its share of the engine frames of the batches its rows ran in. A row's fault becomes that row's error in whichever
stage meets it; a fault of the shard itself (unreadable file, broken device, a write fault that `write_failure`
calls fatal) raises, and Ray runs the shard again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from batchvoc.manifest import Shard
from batchvoc.manifest.conventions import MelChecks
from batchvoc.manifest.mel_marks import MARK_KEY, shard_marks
from batchvoc.runner.stages.channel import Cancelled, Channel, StageThread
from batchvoc.runner.stages.check import check_rows
from batchvoc.runner.stages.read import ShardRead
from batchvoc.runner.stages.vocode import DeviceFeed
from batchvoc.runner.stages.write import WriteStage
from batchvoc.sink import ShardSink
from batchvoc.stats import ShardStats, top_reasons
from batchvoc.stream import VocoderStream

READ_AHEAD_ROWS = 256  # rows between read and check, and between check and vocode
WRITE_QUEUE_ROWS = 64  # vocoded rows waiting for a writer (each holds its audio)


def run_shard(shard: Shard, stream: VocoderStream | DeviceFeed, sink: ShardSink, checks: MelChecks | int, *,
              max_mel_error: float | None = None,
              progress: Callable[[float], None] | None = None,
              info: dict[str, Any] | None = None) -> ShardStats:  # fmt: skip
    """Vocode every row of `shard` into `sink`; write its stats and output manifest; return the stats.

    checks: the worker's MelChecks (or n_mels: no convention checks); max_mel_error: rows above it are suspect
    (None: no verdict); progress: called with the audio seconds of each vocoded batch; info: ShardStats fields
    about the actor (actor, device, backend, precision, ready_s, load_path ...). stream: a VocoderStream this
    shard has to itself, or the worker's DeviceFeed, for shards run at once in several threads: each reads and
    checks its rows while another vocodes, its rows follow the one before's in the same batches, and it writes its
    last rows while the next one vocodes (the device then waits for neither)."""
    feed = stream if isinstance(stream, DeviceFeed) else DeviceFeed(stream)
    started = time.perf_counter()
    marks = shard_marks(shard)  # before any row is read: a rerun tells the mel files rewritten since
    sink.mel_marks = {key: mark for key, (_, mark) in marks.items()}  # an earlier run's file of another mel: redone
    sink.remove_partials()
    results: list[dict[str, Any] | None] = [None] * shard.rows
    n_mels = checks.n_mels if isinstance(checks, MelChecks) else int(checks)
    written = sink.written()  # one listing of the shard's audio folder (resume)
    reader = ShardRead(shard, checks, lambda key: key in written and sink.recall(key))
    read_out: Channel = Channel(READ_AHEAD_ROWS)
    check_out: Channel = Channel(READ_AHEAD_ROWS)
    write_in: Channel = Channel(WRITE_QUEUE_ROWS)
    read = StageThread(f"read-{shard.name}", reader.rows, read_out)
    check = StageThread(f"check-{shard.name}", lambda: check_rows(read_out, checks, shard.name), check_out)
    writers = WriteStage(sink, results, max_mel_error).start(write_in)
    read.start()
    check.start()
    try:
        vocoded = feed.vocode(check_out, n_mels, write_in, progress, stop=lambda: _permanent(sink))
    except Cancelled:  # a writer met a fault of the shard's: join() raises it
        read_out.cancel()
        check_out.cancel()
        write_in.close()
        writers.join()
        raise
    except BaseException as err:
        for channel in (read_out, check_out, write_in):
            channel.cancel()
        writers.join()
        raise err
    write_in.close()
    writers.join()
    ids = reader.passthrough().column("id").to_pylist()
    for index, result in enumerate(results):
        if result is None:  # never leave a row out of the manifest
            key = ids[index] if index < len(ids) else f"#{index}"
            results[index] = sink.failed(None if key is None else str(key), "row was not read")  # a null id: null
    if sink.fault is not None:  # not done: the driver retries a transient fault, reports a permanent one
        raise sink.fault
    stats = _stats(shard, results, writers.reused, time.perf_counter() - started, info)
    stats.read_s, stats.write_s = read.seconds, writers.seconds
    stats.check_s = max(check.seconds - read_out.waited, 0.0)
    stats.rows_vocoded, stats.frames, stats.vocode_s = vocoded.rows, vocoded.frames, vocoded.seconds
    stats.packing_efficiency = vocoded.packing_efficiency
    for key, at in (("first_row_s", vocoded.first_row_at), ("first_audio_s", vocoded.first_audio_at)):
        stats.extra[key] = round(at - started, 3) if at else None  # from the shard's start
    with_audio = {r["id"] for r in results if r["status"] in ("ok", "suspect")}  # failed rows have no audio to be
    if marks:  # stale (they stay failed unless output.retry_failed)
        stats.extra[MARK_KEY] = {key: entry for key, entry in marks.items() if key in with_audio}
    sink.finish(results, reader.passthrough(), stats.to_json())
    return stats


def _permanent(sink: ShardSink) -> str | None:
    """The reason to vocode no more rows: a permanent write fault (no space, permission ...) already seen."""
    fault = sink.fault
    return str(fault) if fault is not None and fault.permanent else None


def _stats(shard: Shard, results: list[dict[str, Any]], reused: set[int], wall: float,
           info: dict[str, Any] | None) -> ShardStats:  # fmt: skip
    """The shard's stats from its rows' output fields; `reused`: the indexes of rows an earlier run's audio file
    gave (their audio counts as written, not as vocoded: the shard's speed is over the audio it vocoded)."""
    status = Counter(r["status"] for r in results)
    written = [r for r in results if r["status"] in ("ok", "suspect")]
    audio = sum(r["duration_s"] for r in written)
    vocoded = audio - sum(results[i]["duration_s"] for i in reused)
    stats = ShardStats(shard=shard.name, rows=len(results), rows_ok=status["ok"], rows_suspect=status["suspect"],
                       rows_failed=status["error"], rows_clipped=sum(1 for r in written if r.get("clipped")),
                       rows_reused=len(reused), audio_seconds=audio, audio_seconds_vocoded=vocoded, wall_s=wall,
                       x_realtime=vocoded / wall if wall > 0 else 0.0,
                       reasons=top_reasons(Counter(r["error"] for r in results if r["error"])))  # fmt: skip
    return stats.with_info(info or {})
