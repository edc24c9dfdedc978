"""Other toolkits' mels on real speech (espeak-ng, clean and over white noise, through each preset's STFT settings;
tests/toolkit_mels.py writes them as each toolkit does), read with the input.mel_scale their user would set: the
model's own and the convertible ones pass, the others are refused or marked suspect with their cause named, never
passed as ok. benchmarks/toolkit_mels.py prints the whole matrix."""

from __future__ import annotations

import numpy as np
import pytest

from batchvoc.errors import RowError
from batchvoc.manifest.conventions import MelChecks, to_natural_log
from batchvoc.models.mel import load_audio_for, mel_filterbank
from batchvoc.models.presets import get_preset
from tests.toolkit_mels import spectrum, toolkit_mels

PRESETS = ("hifigan_v1_universal", "gsv_v4", "bigvgan_v2_24khz_100band_256x", "bigvgan_v2_44khz_128band_512x")


def _verdict(checks: MelChecks, mel: np.ndarray) -> tuple[str, str | None]:
    """('ok' | 'suspect' | 'error', reason) as a job's reader gives them."""
    try:
        reason = checks.read(mel)[1]
        return ("ok" if reason is None else "suspect"), reason
    except RowError as err:
        return "error", str(err)


@pytest.fixture(scope="module", params=PRESETS)
def recorded(request, speech):
    """(preset, [(gain, snr, {toolkit: (mel, scale)})]) for each sentence at gain 1 and peak-normalised to 0.99,
    clean and over white noise 20 dB below the speech's RMS."""
    preset = get_preset(request.param)
    fe = preset.front_end
    rng = np.random.default_rng(3)
    out = []
    for wav in speech.wavs:
        clean = load_audio_for(fe, wav).astype(np.float64)
        rms = float(np.sqrt(np.mean(clean**2)))
        for gain in (1.0, 0.99 / float(np.abs(clean).max())):
            for snr in (None, 20):
                audio = gain * clean
                if snr is not None:
                    audio = audio + gain * rms * 10 ** (-snr / 20) * rng.standard_normal(audio.shape[0])
                out.append((gain, snr, toolkit_mels(np.clip(audio, -1, 1), fe, None)))
    return preset, out


def test_the_models_mels_and_convertible_ones_pass(recorded):
    """ln, librosa's amplitude_to_db of a magnitude mel read as db, and ParallelWaveGAN's log10(max(1e-10, mel))
    read as log10 (clamped at ln(clip) on reading: its silence sits at log10(1e-10), below the model's floor)."""
    preset, rows = recorded
    for gain, snr, mels in rows:
        for toolkit in ("ln", "librosa_amp_db", "pwg"):
            mel, scale = mels[toolkit]
            outcome, reason = _verdict(MelChecks.for_preset(preset, scale=scale), mel)
            assert outcome == "ok", (preset.name, toolkit, gain, snr, reason)
    checks = MelChecks.for_preset(preset, scale="log10")
    pwg = rows[0][2]["pwg"][0]
    converted = checks.read(pwg)[0]
    assert converted.min() == np.float32(checks.floor) and (pwg * np.log(10) < checks.floor - 5).any()
    np.testing.assert_array_equal(converted, to_natural_log(pwg, "log10"))


def test_a_power_mels_db_read_as_db_is_marked_where_it_passes_full_scale(recorded):
    """librosa's power_to_db(melspectrogram(power=2)) read with input.mel_scale=db runs about 1.6 too loud: every
    peak-normalised row passes full scale and is marked suspect, naming the power mel and power=1."""
    preset, rows = recorded
    checks = MelChecks.for_preset(preset, scale="db")
    for _, _, mels in rows[2::4] + rows[3::4]:  # peak-normalised, clean and noisy
        outcome, reason = _verdict(checks, mels["librosa_power_db"][0])
        assert outcome == "suspect" and "dB of a power mel" in reason and "power=1" in reason, (preset.name, reason)


def test_a_filterbank_without_area_normalisation_is_named(recorded):
    """torchaudio's MelSpectrogram defaults (norm=None, HTK triangles of height 1), logged and clamped at 1e-5: its
    silence sits at ln(clip) itself, so it is not named an offset added, but the filterbank."""
    preset, rows = recorded
    checks = MelChecks.for_preset(preset)
    for _, _, mels in rows[0::4] + rows[2::4]:  # clean, at gain 1 and peak-normalised
        outcome, reason = _verdict(checks, mels["htk_nonorm"][0])
        assert outcome == "suspect" and "norm=None" in reason and "norm='slaney'" in reason, (preset.name, reason)
        assert "an offset added" not in reason, reason


def test_coqui_and_matcha_mels_are_never_passed_and_named_normalised(recorded):
    """Coqui TTS's [-4, 4] mels and Matcha-TTS's mean/std-normalised ones, clean and over a noise floor 20 dB below
    the speech: refused or marked suspect, the reason naming a normalisation (not log10 alone)."""
    preset, rows = recorded
    checks = MelChecks.for_preset(preset)
    for gain, snr, mels in rows:
        for toolkit in ("coqui", "matcha"):
            outcome, reason = _verdict(checks, mels[toolkit][0])
            assert outcome != "ok", (preset.name, toolkit, gain, snr)
            named = any(w in reason for w in ("Coqui", "Matcha", "mean/std", "mean and standard deviation"))
            assert named, (preset.name, toolkit, gain, snr, reason)


def test_a_clipped_normalised_range_is_refused_and_loud_speech_is_not(speech):
    """Loud speech (gain 4, hard-clipped: near a square wave) normalised Coqui's way with ref_level_db=0 (a config
    value; its default 20 keeps espeak-ng's speech under the clip) hits the clip at 4: refused, naming the clip and
    Coqui's inverse; the same speech's natural-log mel has no repeated maximum and passes."""
    preset = get_preset("hifigan_v1_universal")
    fe = preset.front_end
    checks = MelChecks.for_preset(preset)
    for wav in speech.wavs:
        audio = np.clip(4.0 * load_audio_for(fe, wav).astype(np.float64), -1, 1)
        mels = toolkit_mels(audio, fe, None)
        assert _verdict(checks, mels["ln"][0]) == ("ok", None)
        coqui_ref0 = np.clip(mels["coqui"][0] + 8 * 20 / 100, -4, 4)  # 20 dB louder: ref_level_db 0, not 20
        outcome, reason = _verdict(checks, coqui_ref0)
        assert outcome == "error" and "pile up at their maximum 4.00" in reason and "((x + 4) / 8" in reason, reason


def test_pwg_mels_convert_to_the_models_own(speech):
    """ParallelWaveGAN's log10 mel read as log10 is the natural-log mel of its filterbank clamped at ln(clip)."""
    preset = get_preset("hifigan_v1_universal")
    fe = preset.front_end
    audio = load_audio_for(fe, speech.wavs[0]).astype(np.float64)
    pwg = toolkit_mels(audio, fe, None)["pwg"][0]
    fb = mel_filterbank(fe.sample_rate, fe.n_fft, fe.n_mels, 80.0, 7600.0).astype(np.float64)
    expected = np.log(np.maximum(fb @ spectrum(audio, fe), 1e-5))
    np.testing.assert_allclose(to_natural_log(pwg, "log10"), expected, atol=1e-4)
