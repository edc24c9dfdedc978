"""Real speech for tests: Debian's espeak-ng speaks a few sentences to WAV; the preset's own front end makes mels.

`speak(folder)` writes the WAVs; `speech_mels(speech, preset)` gives natural-log mels [n_mels, n_frames] made the
way the model's training mels were; `mid_speech(mel, floor)` the frames of its longest stretch without a pause.
The session fixture `speech` (imported by tests/conftest.py) skips where
espeak-ng is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A vocoder turns mel spectrograms back into sound.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese.",
)
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3")


@dataclass(frozen=True)
class Speech:
    """Spoken sentences: WAV files (espeak-ng's own 22.05 kHz mono PCM_16) and their text."""

    wavs: tuple[Path, ...]
    texts: tuple[str, ...]


def espeak() -> str | None:
    """The espeak-ng executable, or None where it is not installed."""
    return shutil.which("espeak-ng")


def speak(folder: Path, sentences: tuple[str, ...] = SENTENCES) -> Speech:
    """Speak each sentence (a different voice each) into folder/sNN.wav; RuntimeError if espeak-ng fails."""
    exe = espeak()
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    folder.mkdir(parents=True, exist_ok=True)
    wavs = []
    for i, text in enumerate(sentences):
        path = folder / f"s{i:02d}.wav"
        voice = VOICES[i % len(VOICES)]
        subprocess.run([exe, "-v", voice, "-w", str(path), text], check=True, capture_output=True, timeout=60)
        wavs.append(path)
    return Speech(tuple(wavs), tuple(sentences))


def speech_mels(speech: Speech, preset) -> list[np.ndarray]:
    """Natural-log mels float32 [n_mels, n_frames] of each WAV through `preset`'s front end (resampled)."""
    from batchvoc.models.mel import load_audio_for, log_mel

    fe = preset.front_end
    return [np.asarray(log_mel(load_audio_for(fe, wav), fe), dtype=np.float32) for wav in speech.wavs]


def predicted_words(speech: Speech, preset, frames: int = 48, rows: int = 16) -> list[np.ndarray]:
    """Short rows of `frames` frames cut one after another from every sentence's natural-log mel (silences too),
    with a little noise (std 0.1), as a TTS model's predicted mels of single words: no value sits exactly on a
    clamped floor."""
    rng = np.random.default_rng(0)
    cuts = [mel[:, at : at + frames] for mel in speech_mels(speech, preset)
            for at in range(0, mel.shape[1] - frames + 1, frames)]  # fmt: skip
    return [m + 0.1 * rng.standard_normal(m.shape).astype(np.float32) for m in cuts[:rows]]


def pink_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """`samples` of pink (1/f power) Gaussian noise, std 1, float64: a room's or a fan's floor, loudest in the low
    bands, where white noise lifts the high ones most."""
    freqs = np.fft.rfftfreq(samples)
    freqs[0] = freqs[1]
    noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(samples)) / np.sqrt(freqs), samples)
    return noise / noise.std()


def eight_bit(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`audio` (float, [-1, 1]) quantised to 8 bits with triangular dither, as `sox -b 8` writes it: a white floor of
    std about 0.0045."""
    step = 2 / 256
    dither = (rng.random(audio.shape) - rng.random(audio.shape)) * step
    return np.round((audio + dither) / step) * step


def mid_speech(mel: np.ndarray, floor: float) -> slice:
    """The frames of the longest stretch of `mel` [n_mels, T] where every frame's loudest band is 6 above ln(clip):
    speech without a pause, where a log10 or scaled mel shows no clamped floor."""
    speaking = np.concatenate([[False], mel.max(0) > floor + 6, [False]])
    edges = np.flatnonzero(np.diff(speaking.astype(np.int8)))
    starts, stops = edges[::2], edges[1::2]
    longest = int(np.argmax(stops - starts))
    return slice(int(starts[longest]), int(stops[longest]))


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> Speech:
    """A few spoken sentences as WAVs in a folder of this session's own; skips where espeak-ng is absent."""
    if espeak() is None:
        pytest.skip("espeak-ng is not installed (Debian: apt-get install espeak-ng; .ci/run installs it)")
    return speak(tmp_path_factory.mktemp("speech"))
