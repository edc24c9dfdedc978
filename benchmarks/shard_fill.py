"""Engine batches a job's shards cost against one stream over the same rows (issue 14), from a manifest's n_frames.

    PYTHONPATH=. python jobs/make_manifest.py /tmp/m1 --hours 1 --files 1
    PYTHONPATH=. python benchmarks/shard_fill.py /tmp/m1                     # gsv_v4, a GPU's batch 16 x 1024
    PYTHONPATH=. python benchmarks/shard_fill.py '/tmp/m8/*/*.parquet' --batch 16 --shard-seconds 600 --actors 8

Packed on its own, each shard ends in a part-filled batch. For the shards cut on audio alone (as before issue
14) and cut for the engine's batches (`plan_shards(..., packing=plan)`, what a job does now), it prints the shards
(their audio, min-max), the engine batches their rows fill each packed alone (chunking.packed_rows, the packer's
own layout; no mel is read), the rows used over the batches' rows, and the packing efficiency (kept frames over
the batches' frames, B x L each); then the same shards through a worker's device feed (runner/stages/vocode.py:
each shard's rows start a new row, in the batch the shard before ends, and only an actor's last shard ends in a
part-filled batch), dealt round-robin to --actors actors, each with its next shard always queued; then one stream
over every row (the least there is) and the per-file floor (each file packed alone: what a job did before the
feed, at best). Times nothing: the engine's time is the batches' count times a batch's time.
"""

from __future__ import annotations

import argparse

import pyarrow.parquet as pq

from batchvoc.chunking import ChunkPlan, packed_rows
from batchvoc.manifest import find_manifest_files, plan_shards
from batchvoc.models import build_model
from batchvoc.models.presets import get_preset
from batchvoc.runtime import plan_chunks


def line(name: str, rows: list[int], frames: int, plan: ChunkPlan) -> str:
    """`rows`: rows filled per packed stream (a shard, a file, or the one stream)."""
    batches = sum(-(-r // plan.batch) for r in rows)
    slots = batches * plan.batch
    efficiency = frames / (slots * plan.length) if slots else 0.0
    return (f"{name}: {batches} batches of {plan.batch}, rows used {sum(rows)}/{slots}, packing efficiency "
            f"{efficiency:.3f}")  # fmt: skip


def fed(rows: list[int], actors: int) -> list[int]:
    """Rows per actor's device feed, the shards (`rows`: each one's rows) dealt round-robin: one packed stream each."""
    return [sum(rows[i::actors]) for i in range(min(actors, len(rows)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", help="Parquet file, folder or glob (with n_frames)")
    parser.add_argument("--preset", default="gsv_v4")
    parser.add_argument("--batch", type=int, default=16, help="engine.batch (a GPU's default: 16)")
    parser.add_argument("--length", type=int, default=1024, help="frames per engine row (a GPU's default: 1024)")
    parser.add_argument("--window", type=int, default=None, help="engine.window: chunk frames (default: from length)")
    parser.add_argument("--shard-seconds", type=float, default=600.0, help="input.shard_seconds")
    parser.add_argument("--actors", type=int, default=1, help="actors the shards are dealt to (the feed's count)")
    args = parser.parse_args()
    preset = get_preset(args.preset)
    plan = plan_chunks(build_model(preset, preset.hparams), preset, args.batch, args.window, args.length)
    files = find_manifest_files(args.manifest)
    frames = {f: pq.read_table(f, columns=["n_frames"]).column("n_frames").to_pylist() for f in files}
    total = sum(sum(f) for f in frames.values())
    seconds = preset.hop_length / preset.sample_rate
    target = int(args.shard_seconds / seconds)
    print(f"{args.preset}: batch {plan.batch} rows of {plan.length} frames (chunk {plan.chunk_frames}, context "
          f"{plan.context}); {len(files)} files, {sum(map(len, frames.values()))} rows, {total * seconds / 3600:.3f} h "
          f"of audio; shards of {args.shard_seconds:g} s")  # fmt: skip
    for name, packing in (("cut on audio", None), ("cut for batches", plan)):
        shards = plan_shards(files, target, packing=packing)
        rows = [packed_rows(frames[s.file][s.start : s.stop], plan) for s in shards]
        sizes = [s.frames * seconds for s in shards]
        print(line(f"{name}, {len(shards)} shards ({min(sizes):.0f}-{max(sizes):.0f} s)", rows, total, plan))
        print(line(f"{name}, through the feed of {args.actors} actors", fed(rows, args.actors), total, plan))
    print(line("one stream", [packed_rows([n for f in files for n in frames[f]], plan)], total, plan))
    print(line("per-file floor", [packed_rows(frames[f], plan) for f in files], total, plan))


if __name__ == "__main__":
    main()
