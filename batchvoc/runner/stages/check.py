"""The check stage: each decoded mel read in the job's convention and checked before it reaches the device.

`MelChecks.read` (batchvoc/manifest/conventions.py) converts input.mel_scale to the natural-log mel and judges
whether it looks like one (check.mel_convention: error -> the row's error; warn -> vocoded, logged, and the row
marked suspect by the write stage; a row that only may be another convention is vocoded and marked suspect in
either mode). Any other exception for one row becomes that row's error; the other rows go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from batchvoc.errors import RowError
from batchvoc.manifest import MelRow
from batchvoc.manifest.conventions import MelChecks
from batchvoc.manifest.rows import logged_warnings


def check_rows(rows: Iterable[MelRow], checks: MelChecks | int, shard: str = "") -> Iterator[MelRow]:
    """rows with each good row's mel converted and checked; a failing row gets mel None and its error."""
    if not isinstance(checks, MelChecks):
        checks = MelChecks(int(checks), mode="off")
    return logged_warnings((_checked(row, checks) for row in rows), shard)


def _checked(row: MelRow, checks: MelChecks) -> MelRow:
    if row.mel is not None:
        try:
            row.mel, row.warning = checks.read(row.mel)
        except RowError as err:
            row.mel, row.error = None, str(err)
        except Exception as err:  # noqa: BLE001 - one row's fault is never the shard's
            row.mel, row.error = None, f"mel check failed: {type(err).__name__}: {err}"
    return row
