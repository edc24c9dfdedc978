"""jobs/make_manifest.py (the benchmarks' synthetic manifests): rows split over the files asked for, no empty file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def _make(folder: Path, hours: float, files: int) -> list[int]:
    args = [sys.executable, str(ROOT / "jobs" / "make_manifest.py"), str(folder), "--hours", str(hours), "--files",
            str(files), "--preset", "hifigan_v1_universal"]  # fmt: skip
    subprocess.run(args, check=True, capture_output=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return [pq.read_metadata(p).num_rows for p in sorted(folder.glob("part*.parquet"))]


def test_rows_split_over_the_files(tmp_path):
    assert _make(tmp_path / "a", 0.02, 3) == [3, 2, 2]  # 7 rows of 10 s


def test_fewer_rows_than_files_leave_no_empty_file(tmp_path):
    assert _make(tmp_path / "b", 0.005, 2) == [1]  # 18 s: one row
