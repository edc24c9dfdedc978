"""Log-mel front ends as the vocoders were trained on (jik876/hifi-gan meldataset.py, GPT-SoVITS mel_processing.py).

log(clamp(mel_basis @ sqrt(|STFT|^2 + eps), clip)) with a Slaney mel filterbank (librosa's default), the STFT run
with center=False on audio reflect-padded by (n_fft - hop) / 2 on each side: N samples give N // hop frames.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from batchvoc.models.presets import MelFrontEnd

_F_SP, _MIN_LOG_HZ = 200.0 / 3, 1000.0  # Slaney mel scale: linear below 1 kHz, logarithmic above
_MIN_LOG_MEL, _LOGSTEP = _MIN_LOG_HZ / _F_SP, math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, mel * _F_SP)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] float32 Slaney triangles, equal to librosa.filters.mel(htk=False, norm="slaney")."""
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fft_hz = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)  # librosa rounds here, then scales
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)  # unit area in Hz


@lru_cache(maxsize=16)
def _basis(fe: MelFrontEnd) -> tuple[Tensor, Tensor]:
    mel = torch.from_numpy(mel_filterbank(fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.fmax))
    return mel, torch.hann_window(fe.win_length)


def log_mel(audio: np.ndarray | Tensor, fe: MelFrontEnd) -> Tensor:
    """audio [N] or [B, N] in [-1, 1] at fe.sample_rate -> float32 log-mel [(B,) n_mels, N // hop]."""
    x = torch.as_tensor(audio).float()
    squeeze = x.dim() == 1
    x = x.unsqueeze(0) if squeeze else x
    if x.dim() != 2:
        raise ValueError(f"audio must be [N] or [B, N], got shape {tuple(x.shape)}")
    pad = (fe.n_fft - fe.hop_length) // 2
    if x.shape[-1] <= pad:
        raise ValueError(f"audio of {x.shape[-1]} samples is too short for this front end (needs > {pad})")
    mel_basis, window = _basis(fe)
    x = F.pad(x.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(
        x, fe.n_fft, hop_length=fe.hop_length, win_length=fe.win_length, window=window.to(x.device),
        center=False, normalized=False, onesided=True, return_complex=True,
    )  # fmt: skip
    magnitude = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1) + fe.magnitude_eps)
    mel = torch.log(torch.clamp(torch.matmul(mel_basis.to(x.device), magnitude), min=fe.clip))
    return mel[0] if squeeze else mel


def resample(audio: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """audio [N] (or [N, channels]) at orig_sr -> [about N * new_sr / orig_sr] at new_sr, same dtype, by libsoxr
    (python-soxr's "VHQ" recipe, linear phase; measured on sines, 48 -> 22.05 kHz: flat to 0.92 of the lower
    Nyquist frequency, -3 dB at 0.95, -44 dB at 0.98, over 130 dB down above it). Takes float32/64 and int16/32
    (soxr raises TypeError or ValueError for others)."""
    import soxr

    if orig_sr == new_sr:
        return audio
    return soxr.resample(audio, orig_sr, new_sr, quality="VHQ")


def load_audio_for(fe: MelFrontEnd, path: str | Path) -> np.ndarray:
    """The audio file at `path` as float32 mono [N] at fe.sample_rate (channels averaged, resampled if needed)."""
    return at_rate(*read_audio(path), fe.sample_rate)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """The audio file at `path` as float32 mono [N] (channels averaged) and its sample rate."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), sr


def at_rate(mono: np.ndarray, sr: int, rate: int) -> np.ndarray:
    """Mono audio [N] at `sr` as float32 [M] at `rate` (resampled where they differ)."""
    if sr != rate:
        mono = resample(np.ascontiguousarray(mono, dtype=np.float32), sr, rate)
    return np.ascontiguousarray(mono, dtype=np.float32)
