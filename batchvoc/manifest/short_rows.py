"""Rows too short to judge alone, judged together: the convention doubt of conventions.looks_compressed on the
values of the short rows of a group of consecutive rows pooled (a job's check stage, runner/stages/check.py; the
manifest reader with full checks, rows.read_shard_rows; the Python API's consecutive mels).

A log10 or scaled-down natural-log mel with no clamped floor shows only in how narrowly its values span, and a row
under MIN_FRAMES_FOR_SPAN frames holds too few values to tell (a TTS model's single words, predicted mels that never
reach the floor). The rows of one manifest share their convention, so the short rows read together (up to
GROUP_ROWS of them) are judged as one mel once they hold POOLED_FRAMES frames. Measured on espeak-ng speech
through 4 presets' front ends at 7 levels and noise floors (crops of 16-63 frames from speech and from whole
utterances, pooled by 2, 4 or 16): pools of 64 frames flagged 1.1% of natural-log pools at two presets, pools of 96
or more none of ~2,000, while 97-99% of log10 and x0.5 pools were flagged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from batchvoc.errors import counted
from batchvoc.manifest.conventions import MIN_FRAMES_FOR_SPAN, MelChecks, looks_compressed

POOLED_FRAMES = 96  # short rows are judged together where their frames reach this (64: 1.1% false doubts)
GROUP_ROWS = 16  # consecutive rows judged together at most: as many as the reader decodes at once (rows.READ_ROWS)


def pooled_doubt(checks: MelChecks, mels: Sequence[np.ndarray]) -> str | None:
    """Why the natural-log mels [n_mels, T_i] of rows read together, each under MIN_FRAMES_FOR_SPAN frames and
    without a doubt of its own, may be log10 or scaled down, judged on their values pooled; None where they are
    fewer than 2, hold fewer than POOLED_FRAMES frames, look like speech, or check.mel_convention=off."""
    frames = sum(mel.shape[1] for mel in mels)
    if checks.mode == "off" or len(mels) < 2 or frames < POOLED_FRAMES:
        return None
    doubt = looks_compressed(np.concatenate(list(mels), axis=1), keys=checks.keys)
    if doubt is None:
        return None
    others = counted(len(mels) - 1, "other row")
    return checks.read_as(f"{doubt}; judged with the {others} under {MIN_FRAMES_FOR_SPAN} frames read with it, too "
                          "short to judge alone")  # fmt: skip


def pooled_warnings(checks: MelChecks, mels: Sequence[np.ndarray], warnings: Sequence[str | None]) -> list[str | None]:
    """`warnings` (one per natural-log mel [n_mels, T_i] read and checked alone, None: no doubt), with each mel
    under MIN_FRAMES_FOR_SPAN frames and without a warning given the pooled doubt (pooled_doubt) of the short mels
    of its group of GROUP_ROWS consecutive ones, where there is one: such rows are vocoded and marked suspect."""
    given = list(warnings)
    for begin in range(0, len(mels), GROUP_ROWS):
        group = range(begin, min(begin + GROUP_ROWS, len(mels)))
        short = [i for i in group if given[i] is None and mels[i].shape[1] < MIN_FRAMES_FOR_SPAN]
        doubt = pooled_doubt(checks, [mels[i] for i in short])
        for i in short if doubt else ():
            given[i] = doubt
    return given


def pool_mel(read: Callable[[], tuple[np.ndarray, str | None]]) -> np.ndarray | None:
    """A reused row's mel (its audio written by an earlier run) as it joins the short rows' pool: `read()`'s
    natural-log mel where its own check found nothing, as in the run that pooled it; None where it cannot be read or
    has a doubt of its own (it is not vocoded, so neither is a fault)."""
    try:
        mel, warning = read()
    except Exception:  # noqa: BLE001 - a mel it cannot give leaves it out of the pool
        return None
    return mel if warning is None else None


def judge_together(rows: Sequence, checks: MelChecks) -> None:
    """pooled_warnings on a group of rows read together (manifest.MelRow: those with a mel, or a reused row's
    reused_mel, and no error take part), each short one to be vocoded without a warning given the pooled doubt where
    there is one."""
    read = [row for row in rows if row.error is None and (row.mel is not None or row.reused_mel is not None)]
    mels = [row.mel if row.mel is not None else row.reused_mel for row in read]
    for row, warning in zip(read, pooled_warnings(checks, mels, [r.warning for r in read]), strict=True):
        if row.mel is not None:
            row.warning = warning
