"""Other toolkits' mels in real jobs: espeak-ng speech, the pretrained HiFi-GAN V1 universal weights on the CPU, a
real local Ray, real Parquet. Each row in a convention the model was not trained on is refused (status error) or
vocoded and marked suspect, with a reason naming its likely cause; the model's own rows in the same files stay ok.
The mels are written as each toolkit writes them (tests/toolkit_mels.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchvoc.models.mel import load_audio_for
from batchvoc.models.presets import get_preset
from tests.toolkit_mels import toolkit_mels

PRESET = get_preset("hifigan_v1_universal")


def _write(path, rows: dict[str, np.ndarray]) -> None:
    """Inline mels [n_mels, n_frames] float32 by id."""
    table = pa.table({"id": list(rows), "mel": [np.ascontiguousarray(m, np.float32).ravel() for m in rows.values()],
                      "n_frames": [m.shape[1] for m in rows.values()]})  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _run(tmp_path, name: str, rows: dict[str, np.ndarray], **kw) -> tuple[int, dict[str, dict]]:
    """A job over `rows` (one Parquet file): (exit code, the output manifest's rows by id)."""
    from batchvoc.runner.driver import run_job
    from batchvoc.settings import JobSettings

    _write(tmp_path / name / "in" / "mels.parquet", rows)
    settings = JobSettings(manifest=str(tmp_path / name / "in"), out_dir=str(tmp_path / name / "out"),
                           preset=PRESET.name, checkpoint="pretrained", backend="eager", precision="fp32", batch=1,
                           cpu_actors=1, **kw)  # fmt: skip
    report = run_job(settings)
    out = settings.out_path
    found = {r["id"]: r for p in sorted((out / "manifest").glob("*.parquet")) for r in pq.read_table(p).to_pylist()}
    return report.exit_code, found


def _mels(speech, snr: float | None, sentence: int = 0) -> dict[str, np.ndarray]:
    """The toolkits' mels of one sentence, peak-normalised to 0.99, clean or over white noise `snr` dB below it."""
    fe = PRESET.front_end
    clean = load_audio_for(fe, speech.wavs[sentence]).astype(np.float64)
    audio = 0.99 * clean / np.abs(clean).max()
    if snr is not None:
        rms = float(np.sqrt(np.mean(audio**2)))
        audio = audio + rms * 10 ** (-snr / 20) * np.random.default_rng(sentence).standard_normal(audio.shape[0])
    return {k: mel for k, (mel, _) in toolkit_mels(np.clip(audio, -1, 1), fe, None).items()}


def test_other_toolkits_rows_are_refused_or_marked_with_their_cause(tmp_path, speech, ray_cluster):
    clean, noisy = _mels(speech, None), _mels(speech, 20, 1)
    code, rows = _run(tmp_path, "ln", {
        "ln": clean["ln"], "ln_noisy": noisy["ln"],
        "coqui_noisy": noisy["coqui"],  # [-4, 4] over a noise floor: no clamp to give it away
        "matcha": clean["matcha"], "matcha_noisy": noisy["matcha"],  # (ln - mean) / std with corpus statistics
        "htk_nonorm": clean["htk_nonorm"],  # torchaudio's MelSpectrogram defaults: norm=None
    })  # fmt: skip
    assert code == 2
    assert rows["ln"]["status"] == rows["ln_noisy"]["status"] == "ok", rows["ln"]
    for key, words in [("coqui_noisy", "Coqui TTS"), ("matcha", "Matcha-TTS"), ("matcha_noisy", "Matcha-TTS"),
                       ("htk_nonorm", "norm=None")]:  # fmt: skip
        row = rows[key]
        assert row["status"] in ("error", "suspect") and words in row["error"], (key, row["status"], row["error"])
    assert rows["matcha"]["status"] == "error" and rows["matcha"]["path"] is None


def test_power_mel_db_and_pwg_log10_rows_in_jobs(tmp_path, speech, ray_cluster):
    """Read as db, librosa's power_to_db of a power=2 mel passes full scale: vocoded, marked suspect, the power mel
    named; amplitude_to_db of a magnitude mel in the same file is ok. Read as log10, ParallelWaveGAN's log10 mel
    (clamped at 1e-10) is clamped at ln(clip) and vocoded ok, as its natural-log mel would be."""
    clean = _mels(speech, None)
    code, rows = _run(tmp_path, "db", {"power_db": clean["librosa_power_db"], "amp_db": clean["librosa_amp_db"]},
                      mel_scale="db")  # fmt: skip
    assert code == 2 and rows["amp_db"]["status"] == "ok", rows["amp_db"]
    assert rows["power_db"]["status"] == "suspect" and "dB of a power mel" in rows["power_db"]["error"], rows
    code, rows = _run(tmp_path, "log10", {"pwg": clean["pwg"]}, mel_scale="log10")
    assert code == 0 and rows["pwg"]["status"] == "ok", rows["pwg"]


def test_the_api_names_the_same_causes_and_converts_pwg_as_a_job(speech):
    """The Python API judges each mel as a job's reader does: Matcha-TTS's and torchaudio's norm=None mels are
    refused or warned with their cause and the keyword spelling; ParallelWaveGAN's log10 mel, with mel_scale="log10",
    gives the audio of its natural-log mel clamped at ln(clip), whole and streamed."""
    import batchvoc

    clean, noisy = _mels(speech, None), _mels(speech, 20, 1)
    vocoder = batchvoc.Vocoder.from_preset(PRESET.name, checkpoint="pretrained", backend="eager", batch=3,
                                           window=96)  # fmt: skip
    matcha, htk, coqui, good = vocoder.vocode_each([clean["matcha"], clean["htk_nonorm"], noisy["coqui"], clean["ln"]])
    assert matcha.audio is None and "Matcha-TTS" in matcha.error, matcha
    assert htk.audio is not None and "norm=None" in htk.warning, htk
    assert not coqui.ok or coqui.warning, coqui
    assert good.ok and good.warning is None, good
    as_log10 = batchvoc.Vocoder.from_preset(PRESET.name, checkpoint="pretrained", backend="eager", batch=3,
                                            window=96, mel_scale="log10")  # fmt: skip
    floor = np.log(PRESET.front_end.clip)
    (pwg,) = as_log10.vocode_each([clean["pwg"]])
    assert pwg.ok and pwg.warning is None, pwg
    expected = vocoder([np.maximum(clean["pwg"] * np.log(10), floor)])[0]
    np.testing.assert_allclose(pwg.audio, expected, atol=1e-5)
    chunks = np.array_split(clean["pwg"], 5, axis=1)
    np.testing.assert_allclose(np.concatenate(list(as_log10.stream(chunks))), expected, atol=1e-4)
