"""Outputs under output.dir: atomic audio files, the per-shard output manifest and stats, the job summary.

Every file is written to a temporary name and renamed into place, so no partial file is ever visible.
A shard is done when manifest/<shard>.parquet exists; it is written last.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from batchvoc.errors import ConfigError

FORMATS = {"wav": ("WAV", ("PCM_16", "PCM_24", "FLOAT")), "flac": ("FLAC", ("PCM_16", "PCM_24"))}
OUTPUT_COLUMNS = ("id", "path", "sample_rate", "n_samples", "duration_s", "peak", "status", "error")
TEMP_MARK = ".partial-"


def check_format(fmt: str, subtype: str) -> None:
    """ConfigError for an output format or subtype batchvoc does not write."""
    if fmt not in FORMATS:
        raise ConfigError("output.format", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if subtype not in FORMATS[fmt][1]:
        raise ConfigError("output.subtype", f"{fmt} takes {', '.join(FORMATS[fmt][1])}, not {subtype!r}")


def check_writable(out_dir: Path) -> None:
    """ConfigError on output.dir unless we can create and write files there."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test{TEMP_MARK}{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError("output.dir", f"cannot write to {out_dir}: {err.strerror or err}") from err


def atomic_write(path: Path, write) -> None:
    """Call write(temp_path) and rename the result to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{path.name}{TEMP_MARK}{os.getpid()}")
    try:
        write(temp)
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()


def remove_partials(folder: Path) -> int:
    """Delete temporary files an interrupted run left below `folder`; returns how many."""
    removed = 0
    if folder.exists():
        for path in folder.rglob(f"*{TEMP_MARK}*"):
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def done_shards(out_dir: Path) -> set[str]:
    """Names of the shards whose output manifest exists."""
    folder = out_dir / "manifest"
    return {p.name[: -len(".parquet")] for p in folder.glob("*.parquet")} if folder.exists() else set()


class ShardSink:
    """Writes one shard's audio files, then its stats and output manifest."""

    def __init__(self, out_dir: Path, shard: str, sample_rate: int, fmt: str = "wav", subtype: str = "PCM_16"):
        check_format(fmt, subtype)
        self.out_dir, self.shard, self.sample_rate = Path(out_dir), shard, sample_rate
        self.container, self.subtype, self.extension = FORMATS[fmt][0], subtype, fmt

    def relpath(self, key: str) -> str:
        return f"wavs/{self.shard}/{key}.{self.extension}"

    def exists(self, key: str) -> bool:
        return (self.out_dir / self.relpath(key)).is_file()

    def write(self, key: str, audio: np.ndarray) -> dict[str, Any]:
        """Write audio [n_samples] float in [-1, 1]; returns the output-manifest fields for it."""
        audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
        path = self.out_dir / self.relpath(key)
        atomic_write(
            path, lambda temp: sf.write(temp, audio, self.sample_rate, subtype=self.subtype, format=self.container)
        )
        return self._fields(key, audio)

    def reuse(self, key: str) -> dict[str, Any]:
        """Fields for an audio file an interrupted run already finished (read back, not written again)."""
        audio, _ = sf.read(self.out_dir / self.relpath(key), dtype="float32")
        return self._fields(key, audio)

    def _fields(self, key: str, audio: np.ndarray) -> dict[str, Any]:
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        n = int(audio.shape[0])
        return dict(id=key, path=self.relpath(key), sample_rate=self.sample_rate, n_samples=n,
                    duration_s=n / self.sample_rate, peak=peak, status="ok", error=None)  # fmt: skip

    def failed(self, key: str, reason: str) -> dict[str, Any]:
        return dict(id=key, path=None, sample_rate=self.sample_rate, n_samples=0, duration_s=0.0, peak=None,
                    status="error", error=reason)  # fmt: skip

    def finish(self, results: list[dict[str, Any]], passthrough: pa.Table, stats: dict[str, Any]) -> None:
        """Write stats/<shard>.json, then manifest/<shard>.parquet (the done marker) with one row per input row."""
        write_json(self.out_dir / "stats" / f"{self.shard}.json", stats)
        table = output_table(results, passthrough)
        atomic_write(self.out_dir / "manifest" / f"{self.shard}.parquet", lambda temp: pq.write_table(table, temp))


def output_table(results: list[dict[str, Any]], passthrough: pa.Table) -> pa.Table:
    """Output columns followed by the input's other columns (renamed input_<name> where they clash)."""
    schema = pa.schema([("id", pa.string()), ("path", pa.string()), ("sample_rate", pa.int32()),
                        ("n_samples", pa.int64()), ("duration_s", pa.float64()), ("peak", pa.float32()),
                        ("status", pa.string()), ("error", pa.string())])  # fmt: skip
    table = pa.Table.from_pylist(results, schema=schema)
    for name in passthrough.column_names:
        if name == "id":
            continue
        column = passthrough.column(name)
        table = table.append_column(f"input_{name}" if name in OUTPUT_COLUMNS else name, column)
    return table


def write_json(path: Path, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2, default=str)
    atomic_write(path, lambda temp: temp.write_text(text))
