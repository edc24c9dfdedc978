"""Mel front ends: librosa-identical filterbank, frame count, silence level, tone placement, resampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from batchvoc.models.mel import hz_to_mel, load_audio_for, log_mel, mel_filterbank, mel_to_hz, resample
from batchvoc.models.presets import MelFrontEnd, get_preset

# Reference values from librosa 0.10.2: librosa.filters.mel(sr=, n_fft=, n_mels=, fmin=, fmax=) (htk=False,
# norm="slaney"): per row (row, argmax, max, sum), then the sum of all weights and sum of weights * bin index.
LIBROSA = {
    (22050, 1024, 80, 0, 8000): (
        [(0, 2, 0.022651389241218567, 0.04530277941375971), (1, 3, 0.019729746505618095, 0.045302781742066145),
         (10, 19, 0.026492536067962646, 0.04914392624050379), (40, 80, 0.014895469881594181, 0.04654524699435569),
         (79, 358, 0.003265992971137166, 0.04641479390556924)],
        3.7136881975075084, 413.6716927004218,
    ),
    (32000, 1280, 100, 0, None): (
        [(0, 1, 0.01874488964676857, 0.03601990267634392), (1, 3, 0.025912519544363022, 0.04318753210827708),
         (10, 16, 0.026094267144799232, 0.04336927970871329), (40, 67, 0.014672867953777313, 0.04043564014136791),
         (99, 616, 0.0016967245610430837, 0.03999253749861964)],
        3.997674814930747, 646.7180095000128,
    ),
}  # fmt: skip


@pytest.mark.parametrize("args", list(LIBROSA))
def test_filterbank_matches_librosa_reference(args):
    rows, total, moment = LIBROSA[args]
    fb = mel_filterbank(*args)
    assert fb.dtype == np.float32 and fb.shape == (args[2], args[1] // 2 + 1)
    for row, argmax, peak, area in rows:
        assert int(fb[row].argmax()) == argmax
        assert fb[row].max() == pytest.approx(peak, rel=1e-6)
        assert fb[row].astype(np.float64).sum() == pytest.approx(area, rel=1e-6)
    assert fb.astype(np.float64).sum() == pytest.approx(total, rel=1e-6)
    assert (fb.astype(np.float64) * np.arange(fb.shape[1])).sum() == pytest.approx(moment, rel=1e-6)


def test_filterbank_properties():
    sr, n_fft = 22050, 1024
    fb = mel_filterbank(sr, n_fft, 80, 0, 8000).astype(np.float64)
    df = sr / n_fft
    assert np.all(fb >= 0)
    # Slaney normalisation: every triangle has unit area in Hz (wide high triangles are sampled finely enough)
    assert np.allclose(fb[40:].sum(axis=1) * df, 1.0, atol=0.02)
    # nothing above fmax
    assert fb[:, int(np.ceil(8000 / df)) + 1 :].max() == 0.0
    assert np.allclose(mel_to_hz(hz_to_mel(np.array([0.0, 440.0, 1000.0, 8000.0]))), [0.0, 440.0, 1000.0, 8000.0])
    assert hz_to_mel(np.array(1000.0)) == pytest.approx(15.0)


@pytest.mark.parametrize("preset", ["gsv_v4", "hifigan_v1_universal"])
def test_frames_silence_and_batch(preset):
    fe = get_preset(preset).front_end
    n = fe.hop_length * 37 + fe.hop_length // 3
    silence = log_mel(np.zeros(n, dtype=np.float32), fe)
    assert silence.shape == (fe.n_mels, n // fe.hop_length) and silence.dtype == torch.float32
    assert torch.allclose(silence, torch.full_like(silence, math.log(fe.clip)))
    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.uniform(-0.5, 0.5, (2, n)).astype(np.float32))
    both = log_mel(batch, fe)
    assert both.shape == (2, fe.n_mels, n // fe.hop_length)
    assert torch.allclose(both[1], log_mel(batch[1].numpy(), fe), atol=1e-5)
    assert both.min() >= math.log(fe.clip) - 1e-6


def _centres(fe: MelFrontEnd) -> np.ndarray:
    fmax = fe.sample_rate / 2 if fe.fmax is None else fe.fmax
    return mel_to_hz(np.linspace(hz_to_mel(fe.fmin), hz_to_mel(fmax), fe.n_mels + 2))[1:-1]


@pytest.mark.parametrize("preset, band", [("hifigan_v1_universal", 50), ("gsv_v4", 70)])
def test_pure_tone_peaks_in_its_band(preset, band):
    fe = get_preset(preset).front_end
    freq = _centres(fe)[band]
    t = np.arange(fe.hop_length * 40) / fe.sample_rate
    mel = log_mel((0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), fe)
    assert int(mel[:, 5:-5].mean(dim=1).argmax()) == band
    # magnitude, not power: a sine of amplitude A puts ~A * win/2 of Hann-window magnitude into ~3 bins by the peak
    fb = mel_filterbank(fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.fmax)
    expected = 0.5 * fe.win_length / 2 * fb[band].max()
    assert math.exp(float(mel[band, 5:-5].mean())) == pytest.approx(expected, rel=0.2)


@pytest.mark.parametrize("orig, new", [(48000, 22050), (16000, 32000), (44100, 48000)])
def test_resample_sine(orig, new):
    freq = 1000.0
    n = orig // 5
    x = np.sin(2 * np.pi * freq * np.arange(n) / orig).astype(np.float32)
    y = resample(x, orig, new)
    assert abs(y.shape[0] - n * new / orig) <= 1 and y.dtype == np.float32
    ref = np.sin(2 * np.pi * freq * np.arange(y.shape[0]) / new)
    mid = slice(y.shape[0] // 4, 3 * y.shape[0] // 4)
    assert np.abs(y[mid] - ref[mid]).max() < 2e-3
    # and a tone above the new Nyquist is removed rather than aliased
    if new < orig:
        high = np.sin(2 * np.pi * 0.49 * np.arange(n)).astype(np.float32)
        assert np.abs(resample(high, orig, new)[mid]).max() < 0.02


def test_load_audio_for_mixes_and_resamples(tmp_path):
    fe = get_preset("hifigan_v1_universal").front_end
    t = np.arange(48000 // 2) / 48000
    left, right = 0.4 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "a.wav", np.stack([left, right], axis=1), 48000, subtype="FLOAT")
    audio = load_audio_for(fe, tmp_path / "a.wav")
    assert audio.dtype == np.float32 and abs(audio.shape[0] - t.size * 22050 / 48000) <= 1
    ref = 0.3 * np.sin(2 * np.pi * 440 * np.arange(audio.size) / 22050)
    assert np.abs(audio[2000:-2000] - ref[2000:-2000]).max() < 2e-3
    sf.write(tmp_path / "b.wav", left, 22050, subtype="FLOAT")
    assert np.array_equal(load_audio_for(fe, tmp_path / "b.wav"), left.astype(np.float32))
