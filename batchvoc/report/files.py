"""The report's file access under output.dir: a few small functions, so the report reads what the job wrote
wherever it lives (a local folder now; fsspec URLs through batchvoc.storage once it is there)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def _local(out: str, rel: str = "") -> Path:
    return Path(out).expanduser() / rel if rel else Path(out).expanduser()


def read_json(out: str, rel: str) -> dict[str, Any] | None:
    """The JSON object at out/rel, or None when the file is not there."""
    path = _local(out, rel)
    return json.loads(path.read_text()) if path.is_file() else None


def list_files(out: str, folder: str, suffix: str) -> list[str]:
    """Paths relative to out of the files folder/*suffix (temporary names left out), sorted."""
    base = _local(out, folder)
    if not base.is_dir():
        return []
    return sorted(f"{folder}/{p.name}" for p in base.glob(f"*{suffix}") if p.is_file() and ".partial-" not in p.name)


def read_table(out: str, rel: str, columns: list[str] | None = None) -> pa.Table:
    """The Parquet file at out/rel; only `columns` that it has (all when None)."""
    path = _local(out, rel)
    if columns is not None:
        names = set(pq.read_schema(path).names)
        columns = [c for c in columns if c in names]
    return pq.read_table(path, columns=columns)


def read_audio(out: str, rel: str) -> tuple[np.ndarray, int]:
    """The audio file at out/rel as float32 mono [N] and its sample rate."""
    import soundfile as sf

    with _local(out, rel).open("rb") as handle:
        data, rate = sf.read(io.BytesIO(handle.read()), dtype="float32", always_2d=True)
    return data.mean(axis=1), rate


def write_text(out: str, rel: str, text: str) -> str:
    """Write text to out/rel (temporary name, then renamed); returns where it went."""
    from batchvoc.sink import atomic_write

    path = _local(out, rel)
    atomic_write(path, lambda temp: temp.write_text(text, encoding="utf-8"))
    return str(path)
