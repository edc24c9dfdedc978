"""Rows too short to judge alone, judged together (manifest/short_rows.py): short rows of real speech (espeak-ng
through each preset's own front end) read as one batch by the manifest reader with full checks, rows.table_rows
(a job's check stage: tests/runner/stages/test_check.py)."""

import numpy as np
import pyarrow as pa
import pytest

from batchvoc.manifest.conventions import MIN_FRAMES_FOR_SPAN, MelChecks
from batchvoc.manifest.rows import READ_ROWS, table_rows
from batchvoc.manifest.short_rows import POOLED_FRAMES
from batchvoc.models.presets import get_preset
from tests.speech import predicted_words

PRESETS = ("hifigan_v1_universal", "gsv_v4", "bigvgan_v2_24khz_100band_256x", "bigvgan_v2_44khz_128band_512x")
FRAMES = 48  # a TTS model's single words: under MIN_FRAMES_FOR_SPAN
LOG10, HALF = (lambda m: m / np.log(10)), (lambda m: 0.5 * m)


def _table(mels: list[np.ndarray]) -> pa.Table:
    """Inline flat mels with n_frames, ids r0, r1, ..."""
    return pa.table({"id": [f"r{i}" for i in range(len(mels))],
                     "mel": [np.ascontiguousarray(m, np.float32).ravel() for m in mels],
                     "n_frames": [m.shape[1] for m in mels]})  # fmt: skip


def _read(mels: list[np.ndarray], checks: MelChecks) -> list:
    return list(table_rows(_table(mels), "m.parquet", checks))


def _flagged(row) -> bool:
    return bool(row.error or row.warning)


@pytest.mark.parametrize("name", PRESETS)
def test_short_log10_or_scaled_rows_read_together_are_marked_and_natural_log_ones_are_not(speech, name):
    preset = get_preset(name)
    checks = MelChecks.for_preset(preset)
    rows = predicted_words(speech, preset, FRAMES, READ_ROWS)
    assert len(rows) == READ_ROWS and FRAMES < MIN_FRAMES_FOR_SPAN and 2 * FRAMES >= POOLED_FRAMES
    assert not any(_flagged(row) for row in _read(rows, checks))
    for kind, make in (("log10", LOG10), ("x0.5", HALF)):
        wrong = [make(m) for m in rows]
        alone = [_read([m], checks)[0] for m in wrong]
        unsure = [own for own in alone if not _flagged(own)]
        assert len(unsure) >= READ_ROWS // 2, (kind, [own.error or own.warning for own in alone])  # the bug
        for row, own in zip(_read(wrong, checks), alone, strict=True):
            if _flagged(own):  # a sign of its own: as alone
                assert (row.error, row.warning) == (own.error, own.warning)
                continue
            assert row.error is None and row.mel is not None and "input.mel_scale=log10" in row.warning, kind
            assert f"judged with the {len(unsure) - 1} other rows under {MIN_FRAMES_FOR_SPAN} frames" in row.warning


def test_short_rows_are_judged_only_where_they_pool_enough_frames_and_never_with_checks_off(speech):
    preset = get_preset("hifigan_v1_universal")
    checks = MelChecks.for_preset(preset)
    words = predicted_words(speech, preset, FRAMES, READ_ROWS)
    unsure = [m for m in map(LOG10, words) if not _flagged(_read([m], checks)[0])]  # no sign alone
    assert len(unsure) >= 3 and FRAMES < POOLED_FRAMES <= 2 * FRAMES
    assert not any(_flagged(r) for r in _read(unsure[:1], checks))  # one row: nothing to pool
    assert all("judged with the 1 other" in r.warning for r in _read(unsure[:2], checks))  # 96 frames
    off = MelChecks.for_preset(preset, mode="off")
    assert not any(_flagged(r) for r in _read(unsure, off))
    # a row of MIN_FRAMES_FOR_SPAN frames or more is judged alone, and is not part of the pool
    rows = _read([np.concatenate(unsure[:2], axis=1), unsure[2]], checks)
    assert "judged with" not in (rows[0].warning or "") and not _flagged(rows[1])
