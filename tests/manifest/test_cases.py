"""Issue 15's table, and a second set of cases of the same kinds, as whole jobs on a real local Ray: real speech
(espeak-ng) through HiFi-GAN V1's front end, vocoded with the pretrained universal weights.

| input                                             | outcome                                              |
| [T, n_mels] flattened, n_frames=T                 | error naming the layout                              |
| log10 / dB / dB with a -80 floor / mel x 0.5 /    | error naming the convention and input.mel_scale      |
|   GPT-SoVITS-normalised                           |                                                      |
| log10 / x0.5 of speech cut with no pause in it    | error or suspect, the reason naming log10            |
| mel + 3 (too loud)                                | written, its clipped samples counted                 |
| sample_rate 16000 / 44100, hop_length 200 column  | error naming the column                              |
| .npy [n_mels, T, 1] / [1, n_mels, T]              | squeezed and written                                 |
| .npy [T, n_mels] / [2, n_mels, T]                 | error; its neighbours written                        |
| integer ids                                       | written as <decimal>.wav                             |
| an empty part (0 rows; with or without columns)   | skipped with a warning                               |
| input.mel_scale=db on dB mels                     | converted and written                                |
| a job on a 0-row manifest                         | exit 1 naming input.manifest                         |
"""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchvoc.manifest.conventions import MIN_FRAMES_FOR_SPAN
from batchvoc.models.mel import load_audio_for, log_mel
from batchvoc.models.presets import get_preset
from tests.speech import mid_speech, speech_mels

PRESET = get_preset("hifigan_v1_universal")
LN10 = np.log(10.0)
REPO = Path(__file__).resolve().parents[2]


def _db(m):
    return 20 * m / LN10


def _at_rate(wav, rate):
    fe = replace(PRESET.front_end, sample_rate=rate)
    return np.asarray(log_mel(load_audio_for(fe, wav), fe), np.float32)


def _inline(path: Path, rows: list[dict], id_type: pa.DataType | None = None) -> None:
    schema = pa.schema([("id", id_type or pa.string()), ("mel", pa.list_(pa.float32())), ("n_frames", pa.int32()),
                        ("n_mels", pa.int32()), ("sample_rate", pa.int32()), ("hop_length", pa.int32()),
                        ("expect", pa.string())])  # fmt: skip
    rows = [dict(r, mel=np.ascontiguousarray(r["mel"], np.float32).ravel(), n_frames=r["mel"].shape[1]) for r in rows]
    pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema), path)


def _job(tmp_path: Path, name: str, **kw):
    from batchvoc.runner.driver import run_job
    from batchvoc.settings import JobSettings

    settings = JobSettings(manifest=str(tmp_path / name), out_dir=str(tmp_path / f"out_{name}"), preset=PRESET.name,
                           checkpoint="pretrained", backend="eager", precision="fp32", batch=1, cpu_actors=1,
                           **kw)  # fmt: skip
    report = run_job(settings)
    out = [r for p in sorted((settings.out_path / "manifest").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    return report, {r["id"]: r for r in out}, settings.out_path


@pytest.fixture(scope="module")
def mels(speech):
    return speech_mels(speech, PRESET)


def test_the_table_and_its_second_set(tmp_path, speech, mels, ray_cluster, caplog):
    m0, m1, m2, m3 = (m[:, :160] for m in mels)  # 1.9 s each: enough speech and silence, quick on a CPU
    folder = tmp_path / "in"
    folder.mkdir()
    sr16k, sr44k = _at_rate(speech.wavs[0], 16000), _at_rate(speech.wavs[1], 44100)
    mid = mels[2][:, mid_speech(mels[2], np.log(PRESET.front_end.clip))]
    assert mid.shape[1] >= MIN_FRAMES_FOR_SPAN
    _inline(folder / "a_inline.parquet", [
        dict(id="good_0", mel=m0, expect="ok"),
        dict(id="good_declared", mel=m1, n_mels=80, sample_rate=22050, hop_length=256, expect="ok"),
        dict(id="t_flat", mel=np.ascontiguousarray(m2.T).reshape(m2.shape), expect="error:[T, n_mels]"),
        dict(id="log10", mel=m3 / LN10, expect="error:input.mel_scale=log10"),
        dict(id="db", mel=_db(m0), expect="error:input.mel_scale=db"),
        dict(id="plus3", mel=mels[2] + 3, expect="written"),
        dict(id="sr16k", mel=sr16k, sample_rate=16000, expect="error:sample_rate is 16000"),
        # the second set: the same kinds, other examples
        dict(id="db80", mel=np.maximum(_db(m1) - _db(m1).max(), -80), expect="error:input.mel_scale=db"),
        dict(id="half", mel=0.5 * m2, expect="error:scaled by 0.50"),
        dict(id="gsv_norm", mel=(m3 + 12) / 7 - 1, expect="error:input.mel_scale=gsv_norm"),
        dict(id="sr44k", mel=sr44k, sample_rate=44100, expect="error:sample_rate is 44100"),
        dict(id="hop200", mel=m1, hop_length=200, expect="error:hop_length is 200"),
        dict(id="n_mels100", mel=m1, n_mels=100, expect="error:n_mels is 100"),
        # cut from mid-speech (no pause, so no clamped floor): log10 and x0.5 never pass, natural log does
        dict(id="mid_ln", mel=mid, expect="ok"),
        dict(id="mid_log10", mel=mid / LN10, expect="not ok:log10"),
        dict(id="mid_half", mel=0.5 * mid, expect="not ok:log10"),
    ])  # fmt: skip
    (folder / "mels").mkdir()
    npys = {"npy_t_1": m0[:, :, None], "npy_1_n": m1[None], "npy_swapped": m2.T, "npy_two": np.stack([m3, m3])}
    for name, array in npys.items():
        np.save(folder / "mels" / f"{name}.npy", array)
    expect = {"npy_t_1": "ok", "npy_1_n": "ok", "npy_swapped": "error:save mel.T", "npy_two": "error:[2, 80, 160]"}
    pq.write_table(pa.table({"id": list(npys), "mel_path": [f"mels/{n}.npy" for n in npys],
                             "expect": [expect[n] for n in npys]}), folder / "b_npy.parquet")  # fmt: skip
    _inline(folder / "c_ints.parquet", [dict(id=7, mel=m2, expect="ok"), dict(id=120, mel=m3, expect="ok")], pa.int64())
    pq.write_table(pa.table({}), folder / "d_empty.parquet")
    pq.write_table(pq.read_table(folder / "c_ints.parquet").slice(0, 0), folder / "e_empty_typed.parquet")

    with caplog.at_level("WARNING"):
        report, rows, out = _job(tmp_path, "in")
    assert "d_empty.parquet" in caplog.text and "e_empty_typed.parquet" in caplog.text
    assert report.exit_code == 2 and not report.failed_shards
    wanted = {r["id"]: r["expect"] for p in sorted(folder.glob("*.parquet")) for r in pq.read_table(p).to_pylist()}
    assert sorted(rows) == sorted(str(k) for k in wanted)
    for key, want in wanted.items():
        row = rows[str(key)]
        if want.startswith("error:"):
            assert row["status"] == "error" and want[6:] in row["error"], (key, row["error"])
            continue
        if want.startswith("not ok:"):  # refused, or written and marked suspect, with the reason
            assert row["status"] in ("error", "suspect") and want[7:] in row["error"], (key, row["error"])
            continue
        assert row["status"] != "error", (key, row["error"])
        if want == "ok":
            assert row["status"] == "ok" and row["clipped"] == 0, (key, row["error"], row["clipped"])
        audio = out / row["path"]
        assert audio.is_file() and row["n_samples"] == pytest.approx(row["duration_s"] * 22050)
    assert rows["7"]["path"].endswith("/7.wav") and rows["120"]["n_samples"] == m3.shape[1] * 256
    assert rows["npy_t_1"]["n_samples"] == 160 * 256
    # tanh never reaches 1.0: clipped means at or past the largest 16-bit PCM code (1 - 2**-15)
    assert rows["plus3"]["clipped"] > 0 and report.summary.rows_clipped >= 1
    assert rows["plus3"]["status"] == "suspect" and "clipped at full scale" in rows["plus3"]["error"]


def test_mel_scale_and_mel_convention_reach_the_workers(tmp_path, mels, ray_cluster):
    """input.mel_scale=db converts dB mels on read; check.mel_convention=warn vocodes a flagged row anyway."""
    (tmp_path / "db").mkdir()
    m0, m1 = mels[0][:, :120], mels[1][:, :120]
    _inline(tmp_path / "db" / "m.parquet", [
        dict(id="db", mel=_db(m0)), dict(id="db_ref_max_80", mel=np.maximum(_db(m1) - _db(m1).max(), -80)),
        dict(id="ln", mel=m0[:, :40]),  # natural-log mels read as dB look far too compressed: warned, not refused
    ])  # fmt: skip
    report, rows, _ = _job(tmp_path, "db", mel_scale="db", mel_convention="warn")
    assert rows["db"]["status"] == "ok" and rows["db_ref_max_80"]["status"] == "ok"
    assert rows["ln"]["status"] != "error" and (tmp_path / "out_db" / rows["ln"]["path"]).is_file()  # written
    assert rows["db"]["n_samples"] == 120 * 256 and not report.failed_shards


def test_a_job_on_a_manifest_without_rows_exits_1_saying_so(tmp_path):
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({}), tmp_path / "in" / "a.parquet")
    _inline(tmp_path / "in" / "b.parquet", [])
    run = subprocess.run(
        [sys.executable, "-m", "batchvoc", "job=hifigan_v1", f"input.manifest={tmp_path / 'in'}",
         f"output.dir={tmp_path / 'out'}", "model.checkpoint=pretrained"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr[-2000:]
    assert "input.manifest" in run.stderr + run.stdout and "no rows" in run.stderr + run.stdout
