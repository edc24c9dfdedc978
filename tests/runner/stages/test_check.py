"""The check stage: rows too short to judge their convention alone are judged with the rows checked with them, as
the docs promise a job does (manifest/short_rows.py). Short rows of real speech (espeak-ng) through the pretrained
HiFi-GAN V1 universal front end; the stage alone, then a whole job on a real local Ray."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchvoc.manifest import MelRow
from batchvoc.manifest.conventions import MelChecks
from batchvoc.manifest.short_rows import GROUP_ROWS
from batchvoc.models.presets import get_preset
from batchvoc.runner.stages.check import check_rows
from tests.speech import predicted_words

PRESET = get_preset("hifigan_v1_universal")


def _checked(mels: list[np.ndarray], checks: MelChecks) -> list[MelRow]:
    """The rows as the read stage hands them (decoded, not yet checked), through the check stage."""
    return list(check_rows((MelRow(i, f"w{i}", mel=m) for i, m in enumerate(mels)), checks, "shard"))


def test_short_log10_rows_are_judged_together_in_the_check_stage_natural_log_ones_pass(speech):
    checks = MelChecks.for_preset(PRESET)
    words = predicted_words(speech, PRESET, rows=GROUP_ROWS + 4)  # a group of 16, then one of 4
    assert all(row.error is None and row.warning is None for row in _checked(words, checks))
    rows = _checked([w / np.log(10) for w in words], checks)
    marked = [row for row in rows if row.warning and "judged with the" in row.warning]
    assert len(marked) >= GROUP_ROWS - 2 and all(row.error is None and row.mel is not None for row in marked), [
        (row.error or row.warning or "")[:80] for row in rows]  # fmt: skip
    assert all("judged with the 3 other" in row.warning for row in rows[GROUP_ROWS:] if row in marked)
    assert all(row.error is None and row.warning is None for row in _checked(words, MelChecks.for_preset(
        PRESET, mode="off")))  # fmt: skip


def test_a_jobs_short_log10_rows_come_out_suspect_not_ok(tmp_path, speech, ray_cluster):
    from batchvoc.runner.driver import run_job
    from batchvoc.settings import JobSettings

    words = predicted_words(speech, PRESET, rows=GROUP_ROWS)
    for name, mels in (("ln", words), ("log10", [w / np.log(10) for w in words])):
        table = pa.table({"id": [f"{name}_{i}" for i in range(len(mels))], "mel": [m.ravel() for m in mels],
                          "n_frames": [m.shape[1] for m in mels]})  # fmt: skip
        (tmp_path / name).mkdir()
        pq.write_table(table, tmp_path / name / "m.parquet")
        settings = JobSettings(manifest=str(tmp_path / name), out_dir=str(tmp_path / f"out_{name}"),
                               preset=PRESET.name, checkpoint="pretrained", backend="eager", precision="fp32",
                               batch=1, cpu_actors=1)  # fmt: skip
        report, rows = run_job(settings), _outcomes(settings.out_path)
        statuses = {r["status"] for r in rows.values()}
        if name == "ln":
            assert statuses == {"ok"} and report.exit_code == 0, [r["error"] for r in rows.values()]
            continue
        assert "ok" not in statuses and report.exit_code == 2, [(r["status"], r["error"]) for r in rows.values()]
        pooled = [key for key, r in rows.items() if "judged with the" in (r["error"] or "")]
        assert pooled
        # a pooled row's audio file lost: vocoded again, it is judged with the rows of its first run (theirs reused)
        (settings.out_path / rows[pooled[0]]["path"]).unlink()
        again = run_job(settings)
        assert again.summary.this_run.rows_vocoded == 1 and _outcomes(settings.out_path) == rows


def _outcomes(out) -> dict:
    """id -> the output manifest's status, error and path."""
    return {r["id"]: {k: r[k] for k in ("status", "error", "path")}
            for p in (out / "manifest").glob("*.parquet") for r in pq.read_table(p).to_pylist()}  # fmt: skip
