"""The demo's input: speech-like audio synthesised on the spot, turned into a mel manifest.

Each utterance is a harmonic source (a gliding pitch) shaped by moving formants, in syllable-like
bursts, with a little breath noise: enough spectral structure that a vocoder's output is easy to judge.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchvoc.models.mel import log_mel
from batchvoc.models.presets import Preset

MADE_WITH = "demo.made_with.json"  # beside the demo manifest: the settings it was made with
DEMO_VERSION = 1  # a change to how the demo's audio is made changes this, so older demo manifests are made again
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
    """Write folder/demo.parquet: `utterances` rows of inline mels through the preset's front end. A file there made
    with the same settings (folder/MADE_WITH says which) is kept as it is: the demo's rerun reads the input its
    first run read (the same whatever run makes it; making it takes ~3 s of 2 CPU cores). The settings are kept
    beside the file, not in it, so the file is the one earlier versions made (the job's identity digests it)."""
    fe = preset.front_end
    path, record = folder / "demo.parquet", folder / MADE_WITH
    made_with = json.dumps(dict(version=DEMO_VERSION, preset=preset.name, front_end=repr(fe), utterances=utterances,
                                seconds=seconds), sort_keys=True)  # fmt: skip
    if _made_with(path, record) == made_with:
        return path
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
    record.unlink(missing_ok=True)  # said again once the file is whole
    partial = folder / f".demo.parquet.{os.getpid()}.partial"  # whole or not at all: a stopped run's is not kept
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), partial, row_group_size=4)
    os.replace(partial, path)
    record.write_text(made_with)
    return path


def _made_with(path: Path, record: Path) -> str | None:
    """The settings the demo manifest at path was made with; None where they, or a readable file, are not there."""
    try:
        pq.read_schema(path)
        return record.read_text()
    except (OSError, pa.ArrowException):
        return None
