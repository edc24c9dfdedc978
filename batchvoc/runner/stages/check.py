"""The check stage: each decoded mel read in the job's convention and checked before it reaches the device.

`MelChecks.read` (batchvoc/manifest/conventions.py) converts input.mel_scale to the natural-log mel and judges
whether it looks like one (check.mel_convention: error -> the row's error; warn -> vocoded, logged, and the row
marked suspect by the write stage; a row that only may be another convention is vocoded and marked suspect in
either mode). Rows too short to judge alone are judged with the rows checked with them (manifest/short_rows.py).
Any other exception for one row becomes that row's error; the other rows go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from batchvoc.errors import RowError
from batchvoc.manifest import MelRow
from batchvoc.manifest.conventions import MelChecks
from batchvoc.manifest.rows import logged_warnings
from batchvoc.manifest.short_rows import GROUP_ROWS, judge_together, pool_mel


def check_rows(rows: Iterable[MelRow], checks: MelChecks | int, shard: str = "") -> Iterator[MelRow]:
    """rows with each good row's mel converted and checked; a failing row gets mel None and its error. Rows too
    short to judge alone are judged with those checked with them, GROUP_ROWS at a time (manifest/short_rows.py):
    the read stage decodes as many at once, so the first rows wait for no more reading than before."""
    if not isinstance(checks, MelChecks):
        checks = MelChecks(int(checks), mode="off")
    return logged_warnings(_judged_together((_checked(row, checks) for row in rows), checks), shard)


def _judged_together(rows: Iterator[MelRow], checks: MelChecks) -> Iterator[MelRow]:
    while group := list(islice(rows, GROUP_ROWS)):
        judge_together(group, checks)
        for row in group:
            row.reused_mel = None  # judged with: no further use
        yield from group


def _checked(row: MelRow, checks: MelChecks) -> MelRow:
    if row.reused_mel is not None:  # read with the checks off: now as its first run judged it
        row.reused_mel = pool_mel(lambda: checks.read(row.reused_mel))
    if row.mel is not None:
        try:
            row.mel, row.warning = checks.read(row.mel)
        except RowError as err:
            row.mel, row.error = None, str(err)
        except Exception as err:  # noqa: BLE001 - one row's fault is never the shard's
            row.mel, row.error = None, f"mel check failed: {type(err).__name__}: {err}"
    return row
