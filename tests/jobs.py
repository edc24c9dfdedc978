"""For the tests that run jobs: a small job's settings, the summary a job wrote, its closing console line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchvoc.errors import counted
from batchvoc.settings import JobSettings
from batchvoc.stats import JobSummary

SMALL_MODEL = {"upsample_initial_channel": 32}  # hifigan_v1's architecture at toy width: builds in a blink


def small_job(folder: Path | None, **kw: Any) -> JobSettings:
    """A job from folder/in to folder/out (folder None: `kw` names manifest and out_dir) with a small random
    HiFi-GAN V1 on eager fp32 (fast on 2 cores); `kw` sets any other JobSettings field, or replaces these."""
    base = dict(preset="hifigan_v1_universal", checkpoint="random", hparams=SMALL_MODEL, backend="eager",
                precision="fp32")  # fmt: skip
    if folder is not None:
        base.update(manifest=str(folder / "in"), out_dir=str(folder / "out"))
    return JobSettings(**{**base, **kw})


def read_summary(out: Path) -> JobSummary:
    """The summary.json a job wrote into output.dir `out` (a local folder)."""
    return JobSummary.from_json(json.loads((Path(out) / "summary.json").read_text()))


def closing_line(summary: JobSummary) -> str:
    """The counts of the command's closing console line, as `python -m batchvoc` prints them for `summary`."""
    s = summary
    not_run = f", {s.rows_not_run} not run" if s.rows_not_run else ""  # said only where shards did not finish
    return (f"{counted(s.rows_ok, 'row')} ok, {s.rows_suspect} suspect, {s.rows_failed} failed{not_run}, "
            f"{s.rows_clipped} clipped")  # fmt: skip
