"""Mel conventions on real speech (espeak-ng through each preset's own front end): natural-log mels pass,
every other convention is named with the key that reads it, input.mel_scale converts, declared columns are checked.
"""

from dataclasses import replace

import numpy as np
import pytest

from batchvoc.errors import ConfigError, RowError
from batchvoc.manifest.conventions import MIN_FRAMES_FOR_SPAN, MelChecks, looks_like, raised_floor, to_natural_log
from batchvoc.models.mel import load_audio_for, log_mel
from batchvoc.models.presets import get_preset
from tests.speech import eight_bit, mid_speech, pink_noise, speech_mels

PRESETS = ("hifigan_v1_universal", "gsv_v4", "bigvgan_v2_24khz_100band_256x", "bigvgan_v2_44khz_128band_512x")
LN10 = np.log(10.0)


def _db(m):
    return 20 * m / LN10


# (kind, make from a natural-log mel, words the reason must hold)
WRONG = [
    ("log10", lambda m: m / LN10, ["log10", "input.mel_scale=log10"]),
    ("dB 20*log10", _db, ["decibels", "input.mel_scale=db"]),
    ("dB ref=max, top_db=80", lambda m: np.maximum(_db(m) - _db(m).max(), -80), ["decibels", "input.mel_scale=db"]),
    ("dB 10*log10 of power", lambda m: 10 * np.log10(np.exp(2 * m)), ["decibels", "input.mel_scale=db"]),
    ("gsv_norm", lambda m: (m + 12) / 14 * 2 - 1, ["[-1, 1]", "input.mel_scale=gsv_norm"]),
    ("z-scored", lambda m: (m - m.mean()) / m.std(), ["mean/std-normalised"]),
    ("dB above 0 (ref below the signal)", lambda m: _db(m) + 100, ["decibels", "input.mel_scale=db"]),
    ("min-max [0, 1]", lambda m: (m - m.min()) / (m.max() - m.min()), ["[0, 1]", "input.mel_scale"]),
    ("linear magnitudes", np.exp, ["linear"]),
    ("scaled by 0.5", lambda m: 0.5 * m, ["scaled by 0.50", "values times 2;"]),
    ("log of power", lambda m: 2 * m, ["power"]),
    ("Tacotron symmetric [-4, 4]", lambda m: np.clip((_db(m) + 100) / 100 * 8 - 4, -4, 4), ["scaled"]),
    ("[T, n_mels] flattened", lambda m: np.ascontiguousarray(m.T).reshape(m.shape), ["[T, n_mels]", "mel.T"]),
    ("all zeros", np.zeros_like, ["placeholder"]),
]


@pytest.fixture(scope="module", params=PRESETS)
def preset_mels(request, speech):
    preset = get_preset(request.param)
    return preset, speech_mels(speech, preset)


def _recorded(speech, preset, gain: float, noise: float) -> list[np.ndarray]:
    """Mels of the speech at another level, over a white noise floor of std `noise` (a recording's floor)."""
    fe = preset.front_end
    rng = np.random.default_rng(7)
    mels = []
    for wav in speech.wavs:
        audio = gain * load_audio_for(fe, wav)
        audio = audio + noise * rng.standard_normal(audio.shape[0]).astype(np.float32)
        mels.append(np.asarray(log_mel(np.clip(audio, -1, 1).astype(np.float32), fe)))
    return mels


def test_natural_log_speech_passes_at_any_level_and_noise_floor(preset_mels, speech):
    preset, mels = preset_mels
    checks = MelChecks.for_preset(preset)
    found = []
    for gain, noise in [(1, 0), (0.05, 0), (1.25, 0), (1, 0.001), (1, 0.01), (1, 0.03), (0.1, 0.003)]:
        for mel in mels if (gain, noise) == (1, 0) else _recorded(speech, preset, gain, noise):
            found.append(looks_like(mel, checks.floor, checks.ceiling))
            assert checks.read(mel)[1] is None
    assert found == [None] * len(found)


@pytest.mark.parametrize("kind, make, words", WRONG, ids=[w[0] for w in WRONG])
def test_each_other_convention_is_named_with_its_key(preset_mels, kind, make, words):
    preset, mels = preset_mels
    checks = MelChecks.for_preset(preset)
    for mel in mels:
        with pytest.raises(RowError) as err:
            checks.read(make(mel).astype(np.float32))
        reason = str(err.value)
        assert all(word in reason for word in words), (kind, reason)
        assert "\n" not in reason


def test_noisy_log10_is_caught_without_a_clamped_floor(speech):
    preset = get_preset("hifigan_v1_universal")
    checks = MelChecks.for_preset(preset)
    for mel in _recorded(speech, preset, 1.0, 0.01):
        assert "log10" in looks_like(mel / LN10, checks.floor, checks.ceiling)


def _verdict(checks: MelChecks, mel: np.ndarray) -> str | None:
    """The refusal's reason, or the warning a vocoded row is marked suspect with, or None."""
    try:
        return checks.read(mel.astype(np.float32))[1]
    except RowError as err:
        return str(err)


def test_log10_or_scaled_mels_cut_from_mid_speech_never_pass(preset_mels, speech):
    """Without a pause there is no clamped floor to give a log10 or x0.5 mel away: its span and its loudest quarter
    do (marked suspect where nothing surer refuses it). The same stretches in natural log, clean or over a
    recording's noise floor, pass."""
    preset, mels = preset_mels
    checks = MelChecks.for_preset(preset)
    cuts = [(i, mid_speech(m, checks.floor)) for i, m in enumerate(mels)]
    cuts = [(i, cut) for i, cut in cuts if cut.stop - cut.start >= MIN_FRAMES_FOR_SPAN]
    assert len(cuts) >= 3
    noisy = [_recorded(speech, preset, gain, noise) for gain, noise in [(1, 0.01), (1, 0.03), (0.1, 0.003)]]
    for i, cut in cuts:
        crop = mels[i][:, cut]
        assert _verdict(checks, crop) is None
        assert all(_verdict(checks, recorded[i][:, cut]) is None for recorded in noisy), i
        for wrong in (crop / LN10, 0.5 * crop):
            reason = _verdict(checks, wrong)
            assert reason is not None and "log10" in reason, (i, crop.shape, reason)


@pytest.mark.parametrize("gain", [0.05, 0.2, 0.3])
def test_linear_mels_of_a_quiet_recording_are_named_linear_not_normalised(preset_mels, speech, gain):
    """Magnitudes (the log forgotten) of speech peaking under 1 lie in [0, 1] (or [0, 1.16], gsv_norm's range at
    44 kHz): heavy-tailed as any linear mel (LINEAR_TOP), they are named linear with the fix (take its ln), not a
    normalised mel; a [0, 1]-normalised log-mel of the same speech is still named normalised."""
    preset, _ = preset_mels
    checks = MelChecks.for_preset(preset)
    for mel in _recorded(speech, preset, gain, 0.0):
        reason = _verdict(checks, np.exp(mel))
        assert reason is not None and "linear (not log)" in reason and "take its ln" in reason, (gain, reason)
        normalised = (mel - mel.min()) / (mel.max() - mel.min())
        assert "normalised" in _verdict(checks, normalised)


# floors that leave natural-log speech's top quarter about half its span (by the share alone, such rows were marked)
FLOORS = {
    "white noise, std 0.004": lambda audio, rng: audio + 0.004 * rng.standard_normal(audio.shape[0]),
    "white noise, std 0.006": lambda audio, rng: audio + 0.006 * rng.standard_normal(audio.shape[0]),
    "pink noise, std 0.006": lambda audio, rng: audio + 0.006 * pink_noise(audio.shape[0], rng),
    "pink noise, std 0.01": lambda audio, rng: audio + 0.01 * pink_noise(audio.shape[0], rng),
    "8-bit audio": eight_bit,
}


@pytest.mark.parametrize("floor", FLOORS)
def test_natural_log_speech_over_a_moderate_floor_is_not_marked_its_log10_and_halves_are(preset_mels, speech, floor):
    """A floor that lifts natural-log speech's 1st percentile until its span is log10-like (under SPAN_OF_SPEECH)
    and its top quarter about half of it leaves the speech's loudest values as wide as ever (TOP_QUARTER_WIDTH):
    whole rows and their mid-speech stretches pass; the same rows in log10 or halved are still named log10."""
    preset, _ = preset_mels
    checks, fe, rng = MelChecks.for_preset(preset), preset.front_end, np.random.default_rng(11)
    for wav in speech.wavs:
        audio = FLOORS[floor](load_audio_for(fe, wav).astype(np.float64), rng)
        mel = np.asarray(log_mel(np.clip(audio, -1, 1).astype(np.float32), fe))
        cut = mel[:, mid_speech(mel, checks.floor)]
        for row in (mel, cut) if cut.shape[1] >= MIN_FRAMES_FOR_SPAN else (mel,):
            assert _verdict(checks, row) is None, (wav.name, row.shape)
            for wrong in (row / LN10, 0.5 * row):
                reason = _verdict(checks, wrong)
                assert reason is not None and "log10" in reason, (wav.name, row.shape, reason)


@pytest.mark.parametrize(
    "scale, make",
    [("log10", lambda m: m / LN10), ("db", _db), ("gsv_norm", lambda m: (m + 12) / 14 * 2 - 1), ("ln", lambda m: m)],
)
def test_mel_scale_converts_on_read(preset_mels, scale, make):
    preset, mels = preset_mels
    checks = MelChecks.for_preset(preset, scale=scale)
    for mel in mels:
        got, warning = checks.read(make(mel).astype(np.float32))
        assert warning is None and got.dtype == np.float32
        np.testing.assert_allclose(got, mel, atol=2e-5 * np.abs(mel).max() + 1e-5)


def test_db_relative_to_max_with_80_db_floor_reads_with_db_scale(preset_mels):
    preset, mels = preset_mels
    checks = MelChecks.for_preset(preset, scale="db")
    for mel in mels:
        got, _ = checks.read(np.maximum(_db(mel) - _db(mel).max(), -80).astype(np.float32))
        assert got.max() == pytest.approx(0.0, abs=1e-5) and got.min() == pytest.approx(-80 * LN10 / 20, abs=1e-4)


def test_a_wrong_mel_scale_is_named_in_the_refusal(preset_mels):
    preset, mels = preset_mels
    with pytest.raises(RowError, match="input.mel_scale=db"):
        MelChecks.for_preset(preset, scale="db").read(mels[0])  # natural-log mels read as dB: far too compressed


def test_warn_and_off_modes_vocode_anyway(preset_mels):
    preset, mels = preset_mels
    log10 = (mels[0] / LN10).astype(np.float32)
    mel, warning = MelChecks.for_preset(preset, mode="warn").read(log10)
    assert "log10" in warning and mel is not None
    mel, warning = MelChecks.for_preset(preset, mode="off").read(log10)
    assert warning is None and np.array_equal(mel, log10)


def test_unknown_scale_or_mode_names_the_key():
    with pytest.raises(ConfigError) as err:
        MelChecks(80, scale="log2")
    assert err.value.key == "input.mel_scale"
    with pytest.raises(ConfigError) as err:
        MelChecks(80, mode="strict")
    assert err.value.key == "check.mel_convention"


def test_mels_made_at_another_sample_rate_look_right_so_the_declared_column_decides(speech):
    """A mel from 16 kHz or 44.1 kHz audio is a plausible natural-log mel: only the sample_rate column tells."""
    preset = get_preset("hifigan_v1_universal")
    checks = MelChecks.for_preset(preset)
    for rate in (16000, 44100):
        fe = replace(preset.front_end, sample_rate=rate)
        mel = np.asarray(log_mel(load_audio_for(fe, speech.wavs[0]), fe))
        assert checks.read(mel)[1] is None
        with pytest.raises(RowError, match=f"sample_rate is {rate} Hz"):
            checks.check_declared(sample_rate=rate)


@pytest.mark.parametrize(
    "preset_name, good, bad",
    [
        ("hifigan_v1_universal", [dict(sample_rate=22050), dict(hop_length=256), dict(sample_rate=22050.0)],
         [dict(sample_rate=16000), dict(sample_rate=44100), dict(hop_length=200), dict(n_mels=100),
          dict(sample_rate=22050.5), dict(sample_rate="fast")]),
        ("gsv_v4", [dict(sample_rate=48000, hop_length=480), dict(sample_rate=32000, hop_length=320),
                    dict(sample_rate=32000), dict(n_mels=100)],
         [dict(sample_rate=24000), dict(sample_rate=32000, hop_length=480), dict(hop_length=256), dict(n_mels=80)]),
    ],
)  # fmt: skip
def test_declared_columns_must_match_the_model(preset_name, good, bad):
    checks = MelChecks.for_preset(get_preset(preset_name))
    for declared in good:
        checks.check_declared(**declared)
    for declared in bad:
        with pytest.raises(RowError) as err:
            checks.check_declared(**declared)
        assert any(column in str(err.value) for column in declared), (declared, err.value)


def test_to_natural_log_definitions():
    x = np.array([[-100.0, 0.0, 20.0]], np.float32)
    np.testing.assert_allclose(to_natural_log(x, "db"), np.log(10.0 ** (x / 20)), rtol=1e-6)
    np.testing.assert_allclose(to_natural_log(x / 20, "log10"), np.log(10.0 ** (x / 20)), rtol=1e-6)
    np.testing.assert_allclose(to_natural_log(np.array([[-1.0, 1.0]], np.float32), "gsv_norm"), [[-12.0, 2.0]])


def test_likely_cause_names_a_too_loud_or_shifted_mel(preset_mels):
    from batchvoc.manifest.conventions import likely_cause

    preset, mels = preset_mels
    checks = MelChecks.for_preset(preset)
    for mel in mels:
        assert likely_cause(mel, checks.floor, checks.ceiling) is None
        assert "too loud" in likely_cause(mel + 3, checks.floor, checks.ceiling)
        assert "shifted" in likely_cause(mel + 1, checks.floor, checks.ceiling)
        assert "log10" in likely_cause(mel / LN10, checks.floor, checks.ceiling)


def test_predicted_mels_that_undershoot_the_floor_pass(preset_mels):
    """A TTS model's mels are not clamped: silences undershoot ln(clip) a little, everything is a little noisy."""
    preset, mels = preset_mels
    checks = MelChecks.for_preset(preset)
    rng = np.random.default_rng(3)
    for mel in mels:
        silent = mel <= checks.floor + 1e-3
        noise = rng.standard_normal(mel.shape).astype(np.float32)
        predicted = np.where(silent, checks.floor - 1.0 + 0.4 * noise, mel + 0.2 * noise)
        assert looks_like(predicted, checks.floor, checks.ceiling) is None
        gsv = np.clip(predicted, -12.0, 2.0)  # GPT-SoVITS denormalises its [-1, 1] output to [-12, 2]
        assert looks_like(gsv, checks.floor, checks.ceiling) is None


def test_the_checks_percentiles_are_numpy_s_to_the_bit():
    """SampleStats (one partial sort) gives what np.percentile gives: q1 for a scalar q, the spread for a list,
    on mels of every size, with ties (a clamped floor), constant values and subsampled long rows."""
    from batchvoc.manifest.conventions import SPREAD, SampleStats, _sample

    rng = np.random.default_rng(11)
    mels = [np.float32([[3.5]]), np.float32([[1.0, 2.0]]), np.full((4, 9), -11.5129, np.float32)]
    for _ in range(400):
        n_mels, frames = int(rng.integers(1, 130)), int(rng.integers(1, 700))
        mel = (rng.normal(-6, rng.uniform(0.01, 4), (n_mels, frames))).astype(np.float32)
        if rng.random() < 0.4:
            mel = np.maximum(mel, np.float32(np.log(1e-5)))
        if rng.random() < 0.2:
            mel = np.round(mel, 1)
        mels.append(mel)
    for mel in mels:
        values = _sample(mel)
        stats = SampleStats.of(mel)
        assert str(stats.q1) == str(float(np.percentile(values, SPREAD[0])))
        assert [str(v) for v in stats.spread] == [str(float(v)) for v in np.percentile(values, list(SPREAD))]


def test_a_floor_clamped_above_the_clip_is_marked_suspect(preset_mels):
    """A clamped floor above ln(clip) with the span of speech (scaled by 0.8, shifted up, clamped at 1e-4): not
    refused (the span is not compressed), but marked suspect with the floor named (or, shifted up past full scale,
    as too loud, with the floor's offset)."""
    preset, mels = preset_mels
    checks = MelChecks.for_preset(preset)
    for mel in mels:
        for wrong, words in [(0.8 * mel, "scaled by 0.80"), (mel + 2, "shifted by +2.00"),
                             (np.maximum(mel, np.log(1e-4)), "clamped at 0.0001")]:  # fmt: skip
            reason = checks.read(wrong.astype(np.float32))[1]
            named = reason is not None and ("pile up at" in reason or "clamped floor at" in reason)
            assert named and words in reason, (preset.name, reason)
        top_db = np.maximum(mel, mel.max() - 80 * LN10 / 20)  # librosa's top_db=80 below the peak: not judged
        assert _verdict(checks, top_db) is None
        top_db = np.maximum(mel, mel.max() - 60 * LN10 / 20)  # 60 dB: a compressed span, refused as such
        assert "top_db=60" in _verdict(checks, top_db)


def test_a_mel_normalised_to_about_0_1_is_named_normalised_never_scaled_by_a_factor_of_0(preset_mels):
    """A dB mel mapped to [0, 1] by a fixed range ((dB + 100) / 100: a little above 1 where the speech is louder
    than 0 dB) or min-max normalised a little past 1 piles up at a floor of 0 (or about it, 0.03 above): refused,
    named a normalised mel, never "a natural-log mel scaled by -0.00" (a floor of exactly 0 divided by zero, a
    ZeroDivisionError as the row's reason). A marked row's floor about 0 is named the same way."""
    preset, mels = preset_mels
    checks = MelChecks.for_preset(preset)
    for mel in mels:
        unit = (mel - mel.min()) / (mel.max() - mel.min())
        for wrong in ((_db(mel) + 100) / 100, 1.1 * unit, 1.1 * unit + 0.03):
            with pytest.raises(RowError) as err:
                checks.read(wrong.astype(np.float32))
            reason = str(err.value)
            assert "normalised mel" in reason and "scaled by" not in reason, (preset.name, reason)
            if wrong.max() > 1.0 + 1e-3 and wrong.max() > (checks.ceiling + 12) / 7 - 1 + 1e-3:  # past gsv_norm's top
                assert "looks like a normalised mel (e.g. min-max to [0, 1]: a floor at about 0" in reason, reason
                assert "undo the normalisation" in reason, reason
        marked = raised_floor((3 * unit - 0.01).astype(np.float32), checks.floor)  # floor / ln(clip): 0.0009
        assert "pile up at -0.01" in marked and "normalised mel" in marked and "scaled by" not in marked, marked


def _predicted(mel: np.ndarray, floor: float) -> np.ndarray:
    """A TTS model's mel of the same speech: not clamped (silences undershoot ln(clip) a little), a little noisy."""
    noise = np.random.default_rng(5).standard_normal(mel.shape).astype(np.float32)
    return np.where(mel <= floor + 1e-3, floor - 1.0 + 0.4 * noise, mel + 0.2 * noise)


# (offset added to a natural-log mel, "ok" / "suspect" / "error", words the reason must hold)
SHIFTS = [
    (-0.5, "ok", []),
    (+3.0, "suspect", ["too loud", "shifted by"]),
    (+5.0, "suspect", ["too loud", "shifted by"]),
    (-3.0, "suspect", ["too quiet", "shifted by"]),
    (-5.0, "suspect", ["too quiet", "shifted by"]),
    (+10.0, "error", ["too loud", "shifted by"]),
    (+20.0, "error", ["too loud", "shifted by"]),
    (-10.0, "error", ["too quiet", "shifted by"]),
]


@pytest.mark.parametrize("offset, outcome, words", SHIFTS, ids=[f"{s[0]:+g}" for s in SHIFTS])
def test_a_shifted_natural_log_mel_is_named_by_its_level(preset_mels, offset, outcome, words):
    """The spread of a mel (1st to 99th percentile) does not move with an offset, so a natural-log mel shifted up or
    down is named as too loud or too quiet, with the offset where a clamped floor gives it, never as decibels,
    log10 or a layout: vocoded and marked suspect, or refused where no audio of this front end gives the values.
    Clamped mels (the front end's) and predicted ones (not clamped, noisy) alike."""
    preset, mels = preset_mels
    checks = MelChecks.for_preset(preset)
    for mel in mels:
        for kind, base in (("clamped", mel), ("predicted", _predicted(mel, checks.floor))):
            shifted = (base + offset).astype(np.float32)
            try:
                reason, refused = checks.read(shifted)[1], False
            except RowError as err:
                reason, refused = str(err), True
            got = "error" if refused else "suspect" if reason else "ok"
            assert got == outcome, (preset.name, kind, offset, reason)
            if outcome == "ok":
                continue
            assert all(word in reason for word in words), (preset.name, kind, reason)
            assert not any(other in reason for other in ("decibels", "log10", "[T, n_mels]", "linear")), reason
            if kind == "clamped":
                assert f"shifted by {offset:+.2f}" in reason, reason


def test_other_conventions_keep_their_names_whatever_their_offset(preset_mels):
    """dB spreads tens whatever its reference; log10, normalised and transposed mels are named as before when
    shifted too (a [T, n_mels] array shifted up still names its layout)."""
    preset, mels = preset_mels
    checks = MelChecks.for_preset(preset)
    cases = [
        (lambda m: _db(m) + 100, ["decibels", "another reference", "input.mel_scale=db"]),
        (lambda m: _db(m) - 20, ["decibels", "input.mel_scale=db"]),
        (lambda m: (m - m.mean()) / m.std(), ["mean/std-normalised"]),
        (lambda m: np.ascontiguousarray(m.T).reshape(m.shape) + 3, ["[T, n_mels]"]),
        (lambda m: np.ascontiguousarray(m.T).reshape(m.shape), ["[T, n_mels]"]),
    ]
    for mel in mels:
        for make, words in cases:
            reason = _verdict(checks, make(mel))
            assert reason is not None and all(word in reason for word in words), (preset.name, words, reason)


def test_likely_cause_names_a_too_quiet_mel(preset_mels):
    from batchvoc.manifest.conventions import likely_cause

    preset, mels = preset_mels
    checks = MelChecks.for_preset(preset)
    for mel in mels:
        assert "too quiet" in likely_cause(mel - 5, checks.floor, checks.ceiling)
        assert "too loud" in likely_cause(_predicted(mel, checks.floor) + 3, checks.floor, checks.ceiling)


def _speech_rms(speech, preset) -> float:
    """The RMS of the sentences through `preset`'s front end (resampled): the level noise floors are set against."""
    audio = np.concatenate([load_audio_for(preset.front_end, wav) for wav in speech.wavs])
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))


def test_the_log_of_a_noisy_power_mel_is_named_power_not_too_quiet(preset_mels, speech):
    """2 x ln of a recording over a noise floor 40 dB below the speech: no clamped floor (the noise lifts it), the
    1st percentile twice the noise floor's ln, below ln(clip) by more than a predicted mel undershoots: read as a
    natural-log mel shifted down it would peak above full scale, so it is named a power mel's log, not a quiet mel
    (marked suspect: a predicted mel undershooting its floor far looks the same)."""
    preset, _ = preset_mels
    checks = MelChecks.for_preset(preset)
    for mel in _recorded(speech, preset, 1.0, 0.01 * _speech_rms(speech, preset)):
        assert _verdict(checks, mel) is None
        reason = checks.read((2 * mel).astype(np.float32))[1]  # vocoded, not refused
        assert reason is not None and "power" in reason and "too quiet" not in reason, (preset.name, reason)


def test_a_loud_noisy_natural_log_mel_is_not_refused_as_log10(preset_mels, speech):
    """A peak-normalised recording over a noise floor 10 dB below the speech spans little (1st percentile -4.6..-4.2)
    and, 1 louder (an offset, or louder audio), stays above the -3.5 that log10 rows keep to; but it peaks near full
    scale, where log10 (at most 0.43 of the full-scale ceiling) and x0.5 rows never reach: never refused, never
    named log10."""
    preset, _ = preset_mels
    checks = MelChecks.for_preset(preset)
    gain = 0.99 / max(float(np.abs(load_audio_for(preset.front_end, wav)).max()) for wav in speech.wavs)
    for mel in _recorded(speech, preset, gain, gain * 0.316 * _speech_rms(speech, preset)):
        for row in (mel, mel + 1):
            reason = _verdict(checks, row)
            assert reason is None or not any(w in reason for w in ("log10", "decibels", "linear")), reason
            checks.read(row.astype(np.float32))  # not refused
        assert "log10" in _verdict(checks, mel / LN10)


def test_a_quiet_noisy_mel_shifted_past_zero_is_too_loud_not_linear(preset_mels, speech):
    """A quiet recording over a noise floor (1st percentile about -8) shifted up by 8 or 10 has no negative values
    but spreads as a natural-log mel and peaks far above full scale: too loud, not linear magnitudes."""
    preset, _ = preset_mels
    checks = MelChecks.for_preset(preset)
    for mel in _recorded(speech, preset, 0.1, 0.1 * 0.316 * _speech_rms(speech, preset)):
        for offset in (8, 10):
            reason = _verdict(checks, mel + offset)
            assert reason is not None and "too loud" in reason and "linear" not in reason, (preset.name, reason)


def test_gsv_norm_of_audio_louder_than_its_spec_max_is_named_gsv_norm(preset_mels, speech):
    """GPT-SoVITS's norm_spec does not clip: a peak-normalised recording through a front end whose full-scale
    ceiling passes spec_max = 2 (44 kHz: 3.13) maps a little above 1, and must still read as gsv_norm."""
    preset, _ = preset_mels
    checks = MelChecks.for_preset(preset)
    gain = 0.99 / max(float(np.abs(load_audio_for(preset.front_end, wav)).max()) for wav in speech.wavs)
    for noise in (0.0, 0.01):
        for mel in _recorded(speech, preset, gain, noise * gain):
            normed = (mel + 12) / 14 * 2 - 1
            reason = _verdict(checks, normed)
            assert reason is not None and "input.mel_scale=gsv_norm" in reason, (preset.name, reason)
            top = float(normed.max())  # the range the reason gives is the row's
            assert ("[-1, 1]" if top <= 1.001 else f"[-1, {top:.2f}]") in reason, (preset.name, top, reason)
    loud = np.float32([[-1.0, 0.2, 1.1]] * 80)  # above the ceiling's norm: not gsv_norm of any audio
    assert checks.ceiling > 2 or "gsv_norm" not in (looks_like(loud, checks.floor, checks.ceiling) or "")


def test_log10_or_scaled_mels_of_a_quiet_noisy_recording_are_marked(preset_mels, speech):
    """log10 (SNR 20 or 30 dB) or x0.5 (20 dB) of a quiet recording over a noise floor: no clamped floor, its 1st
    percentile about -3.3..-4.0, its top quarter as wide as a noisy row's (0.5-0.7); but it spans 2.2-2.8, where
    natural-log speech spans 3.0 or more (whole rows) even at 0 dB SNR: marked (suspect), named log10."""
    preset, _ = preset_mels
    checks = MelChecks.for_preset(preset)
    rms = _speech_rms(speech, preset)
    for snr in (20, 30):
        for mel in _recorded(speech, preset, 0.1, 0.1 * rms * 10 ** (-snr / 20)):
            assert _verdict(checks, mel) is None
            for wrong in (mel / LN10, 0.5 * mel) if snr == 20 else (mel / LN10,):
                reason = _verdict(checks, wrong)
                assert reason is not None and "log10" in reason, (preset.name, snr, reason)


def test_an_unclamped_mel_of_digital_silence_is_not_called_transposed(preset_mels, speech):
    """ln(mel) without the clamp (ln(mel + 1e-9) alike): espeak-ng's digital silence sits at the front end's eps
    floor, the same in every frame, and a short row of it (shifted or not) read as [T, n_mels] is smoother; its
    layout cannot be judged, so it is not called transposed. A [T, n_mels] array of the same rows still is."""
    preset, _ = preset_mels
    checks = MelChecks.for_preset(preset)
    fe = replace(preset.front_end, clip=1e-30)
    for wav in speech.wavs:
        raw = np.asarray(log_mel(load_audio_for(fe, wav), fe), dtype=np.float32)
        for frames in (16, 24, 32):
            for start in range(0, raw.shape[1] - frames, frames // 2):
                window = raw[:, start : start + frames]
                for offset in (0.0, 0.5, 1.0):
                    reason = _verdict(checks, window + offset) or ""
                    assert "[T, n_mels]" not in reason, (preset.name, wav.name, start, frames, offset, reason)
        transposed = np.ascontiguousarray(raw.T).reshape(raw.shape)
        assert "[T, n_mels]" in _verdict(checks, transposed)


def _htk_filterbank(fe) -> np.ndarray:
    """torchaudio's MelSpectrogram default filterbank (mel_scale='htk', norm=None): triangles of peak 1, no area
    normalisation, so each band sums its bins (louder than the Slaney bands the models take)."""
    to_mel, to_hz = (lambda f: 2595 * np.log10(1 + f / 700)), (lambda m: 700 * (10 ** (m / 2595) - 1))
    edges = to_hz(np.linspace(to_mel(fe.fmin), to_mel(fe.fmax or fe.sample_rate / 2), fe.n_mels + 2))
    slopes = edges[None, :] - np.linspace(0, fe.sample_rate / 2, fe.n_fft // 2 + 1)[:, None]
    return np.maximum(0, np.minimum(-slopes[:, :-2] / np.diff(edges)[:-1], slopes[:, 2:] / np.diff(edges)[1:])).T


def test_the_log_of_a_power_mel_through_torchaudio_s_default_filterbank_is_refused(preset_mels, speech):
    """torch.log(MelSpectrogram()(x) + 1e-6), the common recipe: a power mel (power=2) through bands that are not
    area-normalised (norm=None) spreads as no natural-log mel does (19-22, against 3-16) while its guard keeps it
    inside the natural-log range (floor ln(1e-6) = -13.8) and it peaks under ceiling + 6: it passed as ok. Refused,
    named a power mel; the same speech's natural-log mel still passes."""
    import torch

    preset, mels = preset_mels
    checks, fe = MelChecks.for_preset(preset), preset.front_end
    fb = torch.from_numpy(_htk_filterbank(fe)).float()
    for wav, mel in zip(speech.wavs, mels, strict=True):
        audio = torch.from_numpy(load_audio_for(fe, wav))
        spec = torch.stft(audio, fe.n_fft, fe.hop_length, fe.win_length, torch.hann_window(fe.win_length),
                          return_complex=True)  # fmt: skip
        row = torch.log(fb @ spec.abs().pow(2) + 1e-6).numpy()
        reason = _verdict(checks, row)
        assert reason is not None and "power mel" in reason, (preset.name, wav.name, reason)
        with pytest.raises(RowError):
            checks.read(row.astype(np.float32))
        assert _verdict(checks, mel) is None


def test_log10_whose_floor_lies_per_band_is_not_passed_as_natural_log(preset_mels, speech):
    """ESPnet's LogMelFbank (and ParallelWaveGAN recipes built on it) clamps the power before the filterbank
    (sqrt(clamp(power, 1e-10))), so digital silence sits at a floor of its own in each band (1e-5 times the band's
    weights, -6.3 in log10), never at one value: read as a natural-log mel (input.mel_scale left at ln) it passed as
    ok. Refused, naming log10 and its key, where its silence is 1% of the values or more (s02 has less: marked
    suspect as log10 by its span); read with input.mel_scale=log10 it is not refused."""
    preset, _ = preset_mels
    fe = preset.front_end
    before = replace(fe, clip=1e-30, magnitude_eps=1e-10)  # magnitudes sqrt(power + 1e-10), the mel not clamped
    refused = 0
    for wav in speech.wavs:
        espnet = np.asarray(log_mel(load_audio_for(fe, wav), before), dtype=np.float32) / np.float32(LN10)
        reason = _verdict(MelChecks.for_preset(preset), espnet)
        assert reason is not None and "log10" in reason and "input.mel_scale=log10" in reason, (preset.name, reason)
        refused += "floor of their own in each band" in reason
        MelChecks.for_preset(preset, scale="log10").read(espnet)  # not refused (its silences lie below ln(clip))
    assert refused >= len(speech.wavs) - 1, preset.name


def test_log10_clamped_at_1e_10_is_refused_as_log10(preset_mels, speech):
    """ParallelWaveGAN's logmelfilterbank (log10(max(1e-10, mel))) of audio with digital silence, read as a natural-log
    mel: its floor at exactly -10 (log10(1e-10)) was taken for a natural-log mel scaled by 0.87 or clamped at 4.5e-05
    (vocoded, marked suspect); a clamped floor at a whole number of decades with a peak under log10's reach is now
    refused as log10 with its key (s02 has too little silence for a clamped floor: named log10 by its span, or with
    no pause cut out, as before, passed at 24 kHz)."""
    preset, _ = preset_mels
    fe = preset.front_end
    pwg = replace(fe, clip=1e-10, magnitude_eps=0.0)
    named = 0
    for wav in speech.wavs:
        row = np.asarray(log_mel(load_audio_for(fe, wav), pwg), dtype=np.float32) / np.float32(LN10)
        reason = _verdict(MelChecks.for_preset(preset), row)
        named += reason is not None and "= log10(1e-10)" in reason and "input.mel_scale=log10" in reason
        assert reason is None or "log10" in reason, (preset.name, reason)
    assert named >= len(speech.wavs) - 1, preset.name
