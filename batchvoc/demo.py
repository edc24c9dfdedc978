"""The demo's input: speech-like audio synthesised on the spot, turned into a mel manifest.

Each utterance is a harmonic source (a gliding pitch) shaped by moving formants, in syllable-like
bursts, with a little breath noise: enough spectral structure that a vocoder's output is easy to judge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchvoc.models.mel import log_mel
from batchvoc.models.presets import Preset

VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410)]


def synthesise(seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A speech-like clip [seconds * sample_rate] float32, peak about 0.5."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = rng.uniform(100, 200) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    formants = _formant_tracks(n, sample_rate, rng)
    audio = np.zeros(n)
    for k in range(1, int(sample_rate / 2 / f0.max())):
        freq = k * f0
        gain = sum(np.exp(-(((freq - track) / (60 + 0.08 * track)) ** 2)) for track in formants) / k**0.5
        audio += gain * np.sin(k * phase)
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(3, 5) * t)
    audio = audio * syllables + 0.02 * rng.standard_normal(n) * (1 - syllables)
    return (0.5 * audio / np.abs(audio).max()).astype(np.float32)


def _formant_tracks(n: int, sample_rate: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Three formant frequencies [n] each, gliding between random vowels every ~0.25 s."""
    points = max(int(n / sample_rate / 0.25), 2)
    chosen = np.array([VOWELS[i] for i in rng.integers(0, len(VOWELS), points)], dtype=float)
    x = np.linspace(0, n - 1, points)
    return [np.interp(np.arange(n), x, chosen[:, j]) for j in range(3)]


def build_demo_manifest(folder: Path, preset: Preset, utterances: int = 8, seconds: float = 3.0) -> Path:
    """Write folder/demo.parquet: `utterances` rows of inline mels through the preset's front end."""
    fe = preset.front_end
    rng = np.random.default_rng(1234)
    rows = []
    for i in range(utterances):
        length = seconds * rng.uniform(0.8, 1.2)
        mel = log_mel(synthesise(length, fe.sample_rate, rng), fe)
        mel = np.asarray(mel, dtype=np.float32)
        rows.append(dict(id=f"demo_{i:03d}", mel=mel.ravel(), n_frames=mel.shape[1], n_mels=mel.shape[0],
                         speaker=f"synth{i % 2}", text=f"synthetic utterance {i}"))  # fmt: skip
    schema = pa.schema([("id", pa.string()), ("mel", pa.list_(pa.float32())), ("n_frames", pa.int32()),
                        ("n_mels", pa.int32()), ("speaker", pa.string()), ("text", pa.string())])  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=4)
    return path
