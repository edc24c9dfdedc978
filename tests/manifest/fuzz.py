"""A seeded generator of manifests that mix good rows (slices of real speech mels) with bad rows of every kind:
wrong lengths and shapes, dtypes, nulls, extra and missing axes, NaN/Inf, bad or escaping paths, bad and
duplicate ids, other mel conventions, declared columns that disagree with the model.

Every row carries a pass-through column `case` ("c0007:log10") so its outcome can be found in the output manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

INLINE_BAD = ("len_mismatch", "null_mel", "null_frames", "zero_frames", "negative_frames", "nan", "inf",
              "declared_n_mels", "declared_sample_rate", "declared_hop", "log10", "db", "gsv_norm", "transposed",
              "zeros", "id_null", "id_empty", "id_dotdot", "id_absolute", "id_empty_part", "id_too_long", "id_nul",
              "id_duplicate", "huge_frames")  # fmt: skip
NPY_GOOD = ("plain", "leading_1", "trailing_1", "both_1", "float16", "float64")
NPY_BAD = ("swapped", "extra_axis", "one_axis", "ints", "object", "junk", "missing", "escaping", "absolute_missing",
           "empty_path", "null_path", "directory", "nan", "zero_frames", "nul_path", "scalar")  # fmt: skip


@dataclass(frozen=True)
class FuzzRow:
    case: str  # the pass-through column's value
    good: bool
    frames: int  # a good row's n_frames (0 for bad rows)


def _slice(mels: list[np.ndarray], rng: np.random.Generator, low: int = 1, high: int = 160) -> np.ndarray:
    mel = mels[rng.integers(len(mels))]
    length = int(rng.integers(low, min(high, mel.shape[1]) + 1))
    start = int(rng.integers(0, mel.shape[1] - length + 1))
    return np.ascontiguousarray(mel[:, start : start + length])


def _inline_row(kind: str, i: int, mels, rng, good_ids: list[str]) -> dict:
    mel = _slice(mels, rng, low=40 if kind == "transposed" else 1)
    if kind == "log10":  # a whole utterance: a log10 slice with no silence in it passes for a noisy recording
        mel = mels[rng.integers(len(mels))]
    if kind == "transposed" and mel.shape[1] == mel.shape[0]:
        mel = mel[:, 1:]  # a square array reads the same both ways
    n_mels, frames = mel.shape
    row = dict(id=f"utt{i:04d}", mel=mel.ravel(), n_frames=frames, n_mels=n_mels, sample_rate=None)
    if kind == "len_mismatch":
        row["mel"] = mel.ravel()[: -int(rng.integers(1, n_mels * frames))] if rng.random() < 0.5 else \
            np.concatenate([mel.ravel(), mel.ravel()[: int(rng.integers(1, 50))]])  # fmt: skip
    elif kind == "null_mel":
        row["mel"] = None
    elif kind == "null_frames":
        row["n_frames"] = None
    elif kind == "zero_frames":
        row["n_frames"], row["mel"] = 0, np.zeros(0, np.float32)
    elif kind == "negative_frames":
        row["n_frames"] = -frames
    elif kind in ("nan", "inf"):
        flat = mel.ravel().copy()
        flat[rng.integers(flat.size, size=int(rng.integers(1, 4)))] = np.nan if kind == "nan" else -np.inf
        row["mel"] = flat
    elif kind == "declared_n_mels":
        row["n_mels"] = n_mels + int(rng.choice([-20, 20, 48]))
    elif kind == "declared_sample_rate":
        row["sample_rate"] = int(rng.choice([8000, 16000, 44100, 96000]))
    elif kind == "declared_hop":
        row["hop_length"] = int(rng.choice([64, 200, 1024]))
    elif kind in ("log10", "db", "gsv_norm", "zeros"):
        scaled = {"log10": lambda m: m / np.log(10), "db": lambda m: 20 * m / np.log(10),
                  "gsv_norm": lambda m: (m + 12) / 7 - 1, "zeros": np.zeros_like}[kind](mel)  # fmt: skip
        row["mel"] = scaled.astype(np.float32).ravel()
    elif kind == "transposed":
        row["mel"] = np.ascontiguousarray(mel.T).ravel()
    elif kind == "huge_frames":
        row["n_frames"] = 2**31 - 1
    elif kind.startswith("id_"):
        row["id"] = {"id_null": None, "id_empty": "", "id_dotdot": f"../up{i}", "id_absolute": f"/abs/{i}",
                     "id_empty_part": f"a//{i}", "id_too_long": "x" * 300, "id_nul": f"a\x00{i}",
                     "id_duplicate": good_ids[0] if good_ids else None}[kind]  # fmt: skip
    return row


def _npy_row(kind: str, i: int, mels, rng, folder: Path) -> tuple[dict, int]:
    mel = _slice(mels, rng)
    name = f"mels/m{i:04d}.npy"
    path = folder / name
    array: object = mel
    if kind == "leading_1":
        array = mel[None]
    elif kind == "trailing_1":
        array = mel[:, :, None]
    elif kind == "both_1":
        array = mel[None, :, :, None]
    elif kind in ("float16", "float64"):
        array = mel.astype(kind)
    elif kind == "swapped":
        array = np.ascontiguousarray(mel.T) if mel.shape[1] != mel.shape[0] else mel[:, :-1].T
    elif kind == "extra_axis":
        array = np.stack([mel, mel])
    elif kind == "one_axis":
        array = mel[:, 0]
    elif kind == "ints":
        array = mel.astype(np.int16)
    elif kind == "nan":
        array = mel.copy()
        array[0, 0] = np.nan
    elif kind == "zero_frames":
        array = mel[:, :0]
    elif kind == "scalar":
        array = np.float32(-5.0)
    row = dict(id=f"npy{i:04d}", mel_path=name)
    if kind == "object":
        np.save(path, np.array([mel, None], dtype=object), allow_pickle=True)
    elif kind == "junk":
        path.write_bytes(rng.bytes(int(rng.integers(0, 200))))
    elif kind == "missing":
        row["mel_path"] = f"mels/none{i}.npy"
    elif kind == "escaping":
        np.save(folder.parent / f"outside{i}.npy", mel)
        row["mel_path"] = f"../outside{i}.npy"
    elif kind == "absolute_missing":
        row["mel_path"] = str(folder / "nowhere" / f"{i}.npy")
    elif kind == "empty_path":
        row["mel_path"] = ""
    elif kind == "null_path":
        row["mel_path"] = None
    elif kind == "directory":
        row["mel_path"] = "mels"
    elif kind == "nul_path":
        row["mel_path"] = f"mels/a\x00{i}.npy"
    else:
        np.save(path, array)
    return row, mel.shape[1]


def write_fuzz_manifest(folder: Path, mels: list[np.ndarray], seed: int, rows: int = 60) -> list[FuzzRow]:
    """Write folder/{inline,npy,ints,empty}.parquet (+ folder/mels/*.npy); returns every row's expectation."""
    rng = np.random.default_rng(seed)
    (folder / "mels").mkdir(parents=True, exist_ok=True)
    expected: list[FuzzRow] = []
    inline, npy, ints, good_ids = [], [], [], []
    for i in range(rows):
        place = rng.choice(["inline", "npy", "ints"], p=[0.5, 0.35, 0.15])
        good = rng.random() < 0.45
        if place == "npy":
            kind = str(rng.choice(NPY_GOOD if good else NPY_BAD))
            row, frames = _npy_row(kind, i, mels, rng, folder)
            npy.append(row)
        else:
            kind = "good" if good else str(rng.choice(INLINE_BAD))
            row = _inline_row(kind, i, mels, rng, good_ids)
            frames = int(row["n_frames"]) if good else 0
            if place == "ints" and not kind.startswith("id_"):
                row["id"] = int(rng.integers(-(2**40), 2**40))
                ints.append(row)
            else:
                inline.append(row)
                if good:
                    good_ids.append(row["id"])  # inline.parquet is read first: a later copy is the duplicate
        row["case"] = f"c{i:04d}:{place}:{kind}"
        expected.append(FuzzRow(row["case"], good, frames if good else 0))
    _write(folder / "inline.parquet", inline, id_type=pa.string())
    _write(folder / "ints.parquet", ints, id_type=pa.int64())
    _write_npy_manifest(folder / "npy.parquet", npy)
    pq.write_table(pa.table({}), folder / "empty.parquet")
    return expected


def _write(path: Path, rows: list[dict], id_type: pa.DataType) -> None:
    schema = pa.schema([("id", id_type), ("mel", pa.list_(pa.float32())), ("n_frames", pa.int64()),
                        ("n_mels", pa.int32()), ("sample_rate", pa.int32()), ("hop_length", pa.int32()),
                        ("case", pa.string())])  # fmt: skip
    table = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)
    pq.write_table(table, path, row_group_size=7)


def _write_npy_manifest(path: Path, rows: list[dict]) -> None:
    schema = pa.schema([("id", pa.string()), ("mel_path", pa.string()), ("case", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=5)
