"""The report's file access under output.dir: a few small functions, so the report reads what the job wrote
wherever it lives (a local folder or an fsspec URL, through batchvoc.storage)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchvoc.storage import Store


def read_json(out: str, rel: str) -> dict[str, Any] | None:
    """The JSON object at out/rel, or None when the file is not there."""
    store = Store(out)
    return store.read_json(rel) if store.exists(rel) else None


def list_files(out: str, folder: str, suffix: str) -> list[str]:
    """Paths relative to out of the files folder/*suffix (temporary names left out), sorted."""
    names = Store(out).listing(folder)
    return sorted(f"{folder}/{n}" for n in names if n.endswith(suffix) and "/" not in n)


def read_table(out: str, rel: str, columns: list[str] | None = None) -> pa.Table:
    """The Parquet file at out/rel; only `columns` that it has (all when None)."""
    source = pa.BufferReader(Store(out).read_bytes(rel))
    if columns is not None:
        names = set(pq.read_schema(source).names)
        columns = [c for c in columns if c in names]
        source.seek(0)
    return pq.read_table(source, columns=columns)


def read_audio(out: str, rel: str) -> tuple[np.ndarray, int]:
    """The audio file at out/rel as float32 mono [N] and its sample rate."""
    import soundfile as sf

    data, rate = sf.read(io.BytesIO(Store(out).read_bytes(rel)), dtype="float32", always_2d=True)
    return data.mean(axis=1), rate


def write_text(out: str, rel: str, text: str) -> str:
    """Write text to out/rel (temporary name and rename locally, one PUT on an object store); returns where."""
    store = Store(out)
    store.write_bytes(rel, text.encode("utf-8"))
    return store.path(rel) if store.local else f"{store.url}/{rel}"
