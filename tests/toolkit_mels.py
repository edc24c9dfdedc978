"""Other toolkits' mels, written the way each toolkit's own feature code writes them (re-implemented here in
numpy/torch from their published conventions, not imported): for tests/manifest/test_toolkit_conventions.py and
benchmarks/toolkit_mels.py, whose docstring lists them and the mistakes they stand for.
"""

from __future__ import annotations

import numpy as np
import torch

from batchvoc.models.mel import mel_filterbank

MATCHA_MEAN, MATCHA_STD = -5.536622, 2.116101  # Matcha-TTS's LJSpeech data statistics


def spectrum(audio: np.ndarray, fe) -> np.ndarray:
    """|STFT| [n_fft // 2 + 1, frames] float64 of `audio` with the front end's settings (centred, reflect-padded,
    as librosa.stft and torch.stft(center=True) run it)."""
    x = torch.as_tensor(audio, dtype=torch.float64)
    window = torch.hann_window(fe.win_length, dtype=torch.float64)
    spec = torch.stft(x, fe.n_fft, fe.hop_length, fe.win_length, window, center=True, pad_mode="reflect",
                      return_complex=True)  # fmt: skip
    return spec.abs().numpy()


def htk_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """torchaudio's default filterbank (mel_scale='htk', norm=None): triangles of height 1 on the HTK mel scale."""
    fmax = sr / 2 if fmax is None else fmax
    mel = lambda hz: 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)  # noqa: E731
    edges = 700.0 * (10 ** (np.linspace(mel(fmin), mel(fmax), n_mels + 2) / 2595.0) - 1.0)
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    rising = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    falling = (edges[2:, None] - freqs[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    return np.maximum(0.0, np.minimum(rising, falling))


def toolkit_mels(audio: np.ndarray, fe, band_stats: tuple[np.ndarray, np.ndarray] | None) -> dict[str, tuple]:
    """{toolkit: (mel, input.mel_scale its user would set)} of one clip (see the module's docstring)."""
    mag = spectrum(audio, fe)
    slaney = mel_filterbank(fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.fmax).astype(np.float64)
    mel_mag, mel_pow = slaney @ mag, slaney @ mag**2
    ln = np.log(np.maximum(mel_mag, 1e-5))

    def top_db(db: np.ndarray, top: float | None) -> np.ndarray:
        return db if top is None else np.maximum(db, db.max() - top)

    coqui_db = 20 * np.log10(np.maximum(mel_mag, 1e-5)) - 20.0
    coqui01 = (coqui_db + 100.0) / 100.0
    pwg_fb = mel_filterbank(fe.sample_rate, fe.n_fft, fe.n_mels, 80.0, min(7600.0, fe.sample_rate / 2))
    out = {
        "ln": (ln, "ln"),
        "librosa_power_db": (top_db(10 * np.log10(np.maximum(mel_pow, 1e-10)), 80.0), "db"),
        "librosa_power_db_notop": (top_db(10 * np.log10(np.maximum(mel_pow, 1e-10)), None), "db"),
        "librosa_amp_db": (top_db(20 * np.log10(np.maximum(mel_mag, 1e-5)), 80.0), "db"),
        "coqui": (np.clip(8.0 * coqui01 - 4.0, -4.0, 4.0), "ln"),
        "coqui_01": (np.clip(coqui01, 0.0, 1.0), "ln"),
        "htk_nonorm": (
            np.log(np.maximum(htk_filterbank(fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.fmax) @ mag, 1e-5)),
            "ln",
        ),  # fmt: skip
        "matcha": ((ln - MATCHA_MEAN) / MATCHA_STD, "ln"),
        "pwg": (np.log10(np.maximum(pwg_fb.astype(np.float64) @ mag, 1e-10)), "log10"),
    }
    if band_stats is not None:
        out["perband_z"] = ((ln - band_stats[0][:, None]) / band_stats[1][:, None], "ln")
    return {k: (np.ascontiguousarray(v, dtype=np.float32), s) for k, (v, s) in out.items()}
