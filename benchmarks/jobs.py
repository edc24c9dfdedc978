"""Time whole jobs as a user runs them: `python -m batchvoc ...` in a fresh process, wall clock from outside.

    PYTHONPATH=. python benchmarks/jobs.py --out jobs.json \
        "v4 8h 1gpu fresh|0|job=v4_fp16 model.checkpoint=random input.manifest=/tmp/m8 output.dir=/tmp/o1" \
        "v4 8h 2gpu|0,1|job=v4_fp16 model.checkpoint=random input.manifest=/tmp/m8 output.dir=/tmp/o2" ...

Each argument is `label|CUDA_VISIBLE_DEVICES|overrides...` (an empty device list leaves the variable as it is).
Per job: the process wall time (start to exit, as a shell's `time` gives it), the exit code, and summary.json's
wall_seconds, startup_s, x_realtime, audio_seconds, rows_ok, each actor's ready_s / load_path, the timeline, and the
shards' stage times summed (stats/*.json). The job's output.dir is read from the overrides. Public entry points
only; prints a table last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from batchvoc.stats import JobSummary


def run_job(label: str, devices: str, overrides: list[str]) -> dict:
    """Run one job; its figures as a dict (summary.json's, where the job wrote one)."""
    env = dict(os.environ)
    if devices:
        env["CUDA_VISIBLE_DEVICES"] = devices
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "batchvoc", *overrides], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    out_dir = next((o.split("=", 1)[1] for o in overrides if o.startswith("output.dir=")), None)
    row = dict(label=label, devices=devices, overrides=overrides, exit_code=done.returncode, process_s=wall)
    summary = Path(out_dir, "summary.json") if out_dir else None
    if summary and summary.exists():
        s = JobSummary.from_json(json.loads(summary.read_text()))
        row.update(wall_seconds=s.wall_seconds, startup_s=s.startup_s, x_realtime=s.x_realtime,
                   audio_seconds=s.audio_seconds, rows_ok=s.rows_ok, rows_failed=s.rows_failed,
                   rows_not_run=s.rows_not_run, actors=s.actors, backend=s.backend, precision=s.precision)  # fmt: skip
        row["ready_s"] = [a.get("ready_s") for a in s.actors_ready or []]
        row["load_path"] = [a.get("load_path") for a in s.actors_ready or []]
        row["timeline"] = s.timeline
        row["stages_s"] = stage_seconds(Path(out_dir, "stats"))
        row["first_shards"] = first_shards(Path(out_dir, "stats"))
    else:
        row["tail"] = (done.stderr or done.stdout)[-3000:]
    return row


def stage_seconds(folder: Path) -> dict[str, float]:
    """Per-shard stage times summed over the job's stats/*.json: read_s, check_s, vocode_s, write_s, wall_s
    (the stage threads overlap, so the largest busy sum against wall_s names the bound)."""
    keys = ("read_s", "check_s", "vocode_s", "write_s", "wall_s")
    totals = dict.fromkeys(keys, 0.0)
    for path in folder.glob("*.json"):
        stats = json.loads(path.read_text())
        for key in keys:
            totals[key] += float(stats.get(key) or 0.0)
    return {k: round(v, 2) for k, v in totals.items()}


def first_shards(folder: Path, count: int = 2) -> list[dict]:
    """The job's first `count` shards by start: when each began (epoch), its first row at the vocode stage and
    its first audio out of it (seconds from its start), and its wall: where a shard's start-up goes."""
    stats = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    stats = sorted((s for s in stats if s.get("started_at")), key=lambda s: s["started_at"])[:count]
    keys = ("shard", "started_at", "first_row_s", "first_audio_s", "wall_s", "read_s", "check_s")
    return [{k: s.get(k) for k in keys} for s in stats]


def _f(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("jobs", nargs="+", help="label|CUDA_VISIBLE_DEVICES|overrides ...")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = []
    for spec in args.jobs:
        label, devices, overrides = spec.split("|", 2)
        rows.append(run_job(label, devices, overrides.split()))
        print(json.dumps(rows[-1]), flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(rows, indent=2))
    print(f"{'job':28} {'exit':>4} {'process_s':>9} {'wall_s':>7} {'startup_s':>9} {'x_rt':>7} {'audio_h':>7} "
          f"{'rows_ok':>7}  ready_s")  # fmt: skip
    for r in rows:
        audio_h = None if r.get("audio_seconds") is None else r["audio_seconds"] / 3600
        ready = ",".join(_f(v, ".1f") for v in r.get("ready_s") or [])
        print(f"{r['label']:28} {r['exit_code']:>4} {r['process_s']:9.1f} {_f(r.get('wall_seconds'), '7.1f')} "
              f"{_f(r.get('startup_s'), '9.1f')} {_f(r.get('x_realtime'), '7.0f')} {_f(audio_h, '7.2f')} "
              f"{_f(r.get('rows_ok'), '7d')}  {ready} {','.join(r.get('load_path') or [])}")  # fmt: skip


if __name__ == "__main__":
    main()
