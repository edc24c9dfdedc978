"""Building manifests: from a folder of audio files (through a preset's front end) or of .npy mels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
ROW_GROUP_ROWS = 1000


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise SystemExit(f"no {'/'.join(suffixes)} files under {folder}")
    return files


def _id_for(path: Path, folder: Path) -> str:
    """The file's path below the folder, without its suffix, as a POSIX name (the output file's name)."""
    return path.relative_to(folder).with_suffix("").as_posix()


def audio_rows(folder: Path, preset_name: str) -> Iterator[dict]:
    """Inline-mel rows for every audio file below `folder`, through the preset's mel front end."""
    from batchvoc.models.mel import load_audio_for, log_mel
    from batchvoc.models.presets import get_preset

    fe = get_preset(preset_name).front_end
    for path in _files(folder, AUDIO_SUFFIXES):
        mel = np.asarray(log_mel(load_audio_for(fe, path), fe), dtype=np.float32)
        yield dict(id=_id_for(path, folder), mel=mel.ravel(), n_frames=mel.shape[1], n_mels=mel.shape[0],
                   source=str(path))  # fmt: skip


def npy_rows(folder: Path, manifest_dir: Path) -> Iterator[dict]:
    """mel_path rows for every .npy below `folder`, relative to the manifest's folder where possible."""
    for path in _files(folder, (".npy",)):
        mel = np.load(path, mmap_mode="r", allow_pickle=False)
        try:
            mel_path = path.resolve().relative_to(manifest_dir.resolve()).as_posix()
        except ValueError:
            mel_path = str(path.resolve())
        yield dict(id=_id_for(path, folder), mel_path=mel_path, n_frames=int(mel.shape[-1]), n_mels=int(mel.shape[-2]))


def write_rows(rows: Iterator[dict], out: Path, inline: bool) -> int:
    """Stream rows into a Parquet manifest with row groups of ROW_GROUP_ROWS; returns the row count."""
    fields = [("id", pa.string())]
    if inline:
        fields += [("mel", pa.list_(pa.float32())), ("n_frames", pa.int32()), ("n_mels", pa.int32()),
                   ("source", pa.string())]  # fmt: skip
    else:
        fields += [("mel_path", pa.string()), ("n_frames", pa.int32()), ("n_mels", pa.int32())]
    schema = pa.schema(fields)
    out.parent.mkdir(parents=True, exist_ok=True)
    count, chunk = 0, []
    with pq.ParquetWriter(out, schema) as writer:
        for row in rows:
            chunk.append(row)
            if len(chunk) == ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                count, chunk = count + len(chunk), []
        if chunk:
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
            count += len(chunk)
    return count
