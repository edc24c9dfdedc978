"""What planning costs on a manifest of millions of rows: the driver's steps before Ray and the actors start.

    PYTHONPATH=. python benchmarks/plan_scale.py --rows 2000000 --files 8            # make, time, delete
    PYTHONPATH=. python benchmarks/plan_scale.py --rows 200000 --files 8 --profile 25
    PYTHONPATH=. python benchmarks/plan_scale.py --manifest /tmp/m2M --keep ...      # reuse / keep a manifest

Makes (unless --manifest names one) a manifest as `python -m batchvoc.manifest npy` writes it, in a temp folder:
--files Parquet parts of row groups of 1,000 rows (build.ROW_GROUP_ROWS), columns id, mel_path, n_frames,
n_mels; ids as real corpora name them, 2-3 folders deep (`speaker_0123/chapter_04/utt_000123`, every fourth
speaker's under `extra/`), in id order (--shuffle: in random order), none duplicate or clashing; n_frames ±20%
around --seconds (--no-frames: no such column, as in a manifest of .npy paths alone). No .npy file is written:
planning reads no mel where the manifest has n_frames (without it, the 16 .npy headers it estimates frames from
are missing, so the guess stays). Then runs, in one process and in the driver's order (runner/driver.run_job),
each step timed (wall clock) with the process's peak RSS over it (VmHWM, reset before each step through
/proc/self/clear_refs) and the RSS it leaves:

    quick_checks   runner/checks.quick_checks (listing, first footer, output.dir writable, lock free)
    plan           runner/driver.plan: every footer, ManifestRows.read (id + n_frames of every row: duplicate and
                   clashing ids), shards cut on audio, their frames estimated where guessed
    identify       runner/resume.identify: every file's footer and content digest
    columns        outputs.passthrough_schema over the files
    claim          the job lock and job.json in a fresh output folder
    cut            runner/driver.cut for a GPU's engine plan (batch 16): shards cut where rows fill batches

--profile N prints cProfile's N costliest functions (own time) over those steps. The model (for the engine plan)
is built before the steps and is not timed. Times nothing on a device.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchvoc.manifest.build import ROW_GROUP_ROWS


def make_manifest(folder: Path, rows: int, files: int, seconds: float, frame_rate: float, n_mels: int,
                  frames_column: bool = True, shuffle: bool = False) -> None:  # fmt: skip
    """`rows` rows over `files` parts (module doc), written column-wise (seconds for millions of rows)."""
    rng = np.random.default_rng(0)
    order = rng.permutation(rows) if shuffle else np.arange(rows)
    folder.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("id", pa.string()), ("mel_path", pa.string()), ("n_frames", pa.int32()),
                        ("n_mels", pa.int32())])  # fmt: skip
    written = schema if frames_column else schema.remove(schema.get_field_index("n_frames"))
    for part, numbers in enumerate(np.array_split(order, files)):
        with pq.ParquetWriter(folder / f"part{part:03d}.parquet", written) as writer:
            for start in range(0, len(numbers), ROW_GROUP_ROWS):
                group = numbers[start : start + ROW_GROUP_ROWS]
                ids = [_id(int(i)) for i in group]
                frames = (seconds * frame_rate * rng.uniform(0.8, 1.2, len(group))).astype(np.int32)
                table = pa.table([pa.array(ids), pa.array([f"mels/{i}.npy" for i in ids]), pa.array(frames),
                                  pa.array(np.full(len(group), n_mels, np.int32))], schema=schema)  # fmt: skip
                writer.write_table(table if frames_column else table.drop_columns(["n_frames"]))


def _id(i: int) -> str:
    """An utterance id as corpora name them: 40 utterances a chapter, 25 chapters a speaker."""
    speaker, chapter, utt = i // 1000, i // 40 % 25, i % 1000
    prefix = "extra/" if speaker % 4 == 3 else ""
    return f"{prefix}speaker_{speaker:04d}/chapter_{chapter:02d}/utt_{utt:06d}"


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS


def _status(key: str) -> float:
    """/proc/self/status's `key` (VmHWM, VmRSS) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Steps:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.peak = 0.0  # MiB: the highest step peak (clear_refs resets ru_maxrss too)
        self.wall = 0.0  # s, the steps together

    def run(self, name: str, call, *args):
        before = _status("VmRSS")
        _reset_peak()
        start = time.perf_counter()
        result = call(*args)
        wall = time.perf_counter() - start
        peak, after = _status("VmHWM"), _status("VmRSS")
        self.peak, self.wall = max(self.peak, peak), self.wall + wall
        self.lines.append(f"{name:<13} {wall:8.2f} s   peak RSS {peak:7.0f} MiB (+{peak - before:5.0f})   "
                          f"after {after:7.0f} MiB")  # fmt: skip
        print(self.lines[-1], flush=True)
        return result


def plan_steps(manifest: str, out_dir: str, preset_name: str, steps: Steps) -> list:
    """The driver's steps before Ray (module doc); the shards to run."""
    from batchvoc.models import build_model
    from batchvoc.models.presets import get_preset
    from batchvoc.outputs import passthrough_schema
    from batchvoc.runner.checks import quick_checks
    from batchvoc.runner.driver import cut, engine_plan, plan
    from batchvoc.runner.resume import hold_output, identify
    from batchvoc.settings import JobSettings

    settings = JobSettings(manifest=manifest, out_dir=out_dir, preset=preset_name, checkpoint="random",
                           backend="eager")  # fmt: skip
    preset = get_preset(preset_name)
    packing = engine_plan(settings, build_model(preset, preset.hparams), preset, gpu=True)
    files = steps.run("quick_checks", quick_checks, settings)
    planned = steps.run("plan", plan, settings, files, preset)
    identity = steps.run("identify", identify, settings, preset)
    columns = steps.run("columns", passthrough_schema, planned.rows.files_with_rows())
    with hold_output(settings) as job:
        steps.run("claim", job.claim, settings, preset, identity)
        shards = steps.run("cut", cut, settings, planned, preset, job.shard_packing(preset, lambda: packing))
        shards = [replace(s, columns=columns) for s in shards]
        return [s for s in shards if s.name not in job.done]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="mean utterance length")
    parser.add_argument("--preset", default="gsv_v4")
    parser.add_argument("--manifest", type=Path, help="a manifest folder made before (made there if absent)")
    parser.add_argument("--keep", action="store_true", help="keep the manifest (default: deleted when made here)")
    parser.add_argument("--no-frames", action="store_true", help="no n_frames column (frames guessed, estimated)")
    parser.add_argument("--shuffle", action="store_true", help="rows in random order (default: sorted by id)")
    parser.add_argument("--profile", type=int, default=0, help="print cProfile's N costliest functions")
    args = parser.parse_args()

    from batchvoc.models.presets import get_preset

    preset = get_preset(args.preset)
    work = Path(tempfile.mkdtemp(prefix="plan_scale_"))
    folder = args.manifest or work / "manifest"
    made = not folder.exists()
    try:
        if made:
            start = time.perf_counter()
            make_manifest(folder, args.rows, args.files, args.seconds, preset.frame_rate, preset.n_mels,
                          not args.no_frames, args.shuffle)  # fmt: skip
            print(f"made {args.rows:,} rows in {args.files} files in {time.perf_counter() - start:.1f} s: {folder}")
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(folder.glob("*.parquet")))
        size = sum(f.stat().st_size for f in folder.glob("*.parquet")) / 2**20
        print(f"manifest {folder}: {rows:,} rows, {size:.0f} MiB; python {sys.version.split()[0]}")
        steps = Steps()
        profile = cProfile.Profile() if args.profile else None
        if profile:
            profile.enable()
        todo = plan_steps(str(folder), str(work / "out"), args.preset, steps)
        if profile:
            profile.disable()
        print(f"{'total':<13} {steps.wall:8.2f} s   {len(todo):,} shards; peak RSS "
              f"{steps.peak:.0f} MiB")  # fmt: skip
        if profile:
            pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    finally:
        if made and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
