"""Building manifests from a folder of audio files (through a preset's front end) or of .npy mels.

Files that cannot be used (unreadable, too short, wrong shape, a name the job refuses as an id: rows.check_id; for
.npy mels whatever the job's row checks refuse: not floats, 0 frames, NaN or Inf values, values beyond float32's
range) are skipped with a reason each; the manifest is written to a temporary name and renamed when complete, so a
failed build never leaves a half-written manifest.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchvoc.errors import RowError
from batchvoc.manifest.rows import check_id, finite_float32, npy_array_mel, npy_error, one_line

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
ROW_GROUP_ROWS = 1000
TEMP_MARK = ".partial-"
# an audio row's key that is no column: (the file's rate, the front end's) where audio_row resampled the file
RESAMPLED = "_resampled"


@dataclass
class BuildResult:
    """What a build did: rows written to `out` (None when nothing was written), (file, reason) skipped, and per
    (from, to) sample rates how many of the rows' audio files were resampled to the front end's rate."""

    out: Path | None
    rows: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    resampled: Counter[tuple[int, int]] = field(default_factory=Counter)


class Skip(Exception):
    """A file the builder cannot use; the message is the reason."""


def find_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files below `folder` with one of `suffixes` (any case), sorted; SystemExit when there are none."""
    if not folder.is_dir():
        raise SystemExit(f"{folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise SystemExit(f"no {'/'.join(suffixes)} files under {folder}")
    return files


def _id_for(path: Path, folder: Path) -> str:
    """The file's path below the folder, without its suffix, as a POSIX name (the output file's name); Skip where
    the job's row check (rows.check_id) would refuse it as an id (a control character or a backslash in a name)."""
    key = path.relative_to(folder).with_suffix("").as_posix()
    try:
        check_id(key)
    except RowError as err:
        raise Skip(f"{err}; rename the file") from None
    return key


def audio_row(path: Path, folder: Path, preset_name: str) -> dict:
    """An inline-mel row for one audio file through the preset's mel front end; Skip with the reason."""
    key = _id_for(path, folder)  # before the audio is read: a file whose id the job refuses makes no row
    import torch

    from batchvoc.models.mel import at_rate, log_mel, read_audio
    from batchvoc.models.presets import get_preset

    torch.set_num_threads(1)
    fe = get_preset(preset_name).front_end
    try:
        audio, rate = read_audio(path)
        audio = at_rate(audio, rate, fe.sample_rate)
    except Exception as err:  # noqa: BLE001 - soundfile/libsndfile raise several kinds for a bad file
        raise Skip(f"unreadable audio: {one_line(err)}") from None
    needed = max((fe.n_fft - fe.hop_length) // 2 + 1, fe.hop_length)
    if audio.shape[0] < needed:
        raise Skip(f"too short: {audio.shape[0]} samples at {fe.sample_rate} Hz, the front end needs {needed}")
    if not np.isfinite(audio).all():
        raise Skip("audio holds NaN or Inf samples")
    mel = np.asarray(log_mel(audio, fe), dtype=np.float32)
    # source: the audio file's absolute path. It passes through to the output manifest (output.dir/manifest/), whose
    # readers cannot resolve a path relative to the current directory of the build, nor to the input manifest's
    # folder (batchvoc resolves mel_path that way, source it never reads)
    row = dict(id=key, mel=mel.ravel(), n_frames=mel.shape[1], n_mels=mel.shape[0],
               source=str(path.resolve()))  # fmt: skip
    if rate != fe.sample_rate:  # counted by write_manifest, said once per build (not a column: no row reads it)
        row[RESAMPLED] = (rate, fe.sample_rate)
    return row


def npy_row(path: Path, folder: Path, manifest_dir: Path, n_mels: int | None = None) -> dict:
    """A mel_path row for one .npy [n_mels, n_frames] (size-1 axes squeezed); Skip with the reason.

    The array is checked by the job's own row checks (rows.npy_array_mel, rows.finite_float32): floats, the
    shape, `n_mels` bands where given (the preset's), at least one frame, no NaN or Inf, nothing beyond float32's
    range; a file the job would refuse makes no row. The mel conventions (log10, dB, ...) are not judged here:
    input.mel_scale, set when the job runs, decides how they read."""
    key = _id_for(path, folder)  # before the file is read: a file whose id the job refuses makes no row
    try:
        mel = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - numpy raises several kinds for a bad file
        raise Skip(f"unreadable .npy: {npy_error(err, path)}") from None
    try:
        mel = npy_array_mel(mel, "the .npy", n_mels, taker="the preset")
        finite_float32(mel, "the .npy")
    except RowError as err:
        raise Skip(str(err)) from None
    try:
        mel_path = path.resolve().relative_to(manifest_dir.resolve()).as_posix()
    except ValueError:
        mel_path = str(path.resolve())
    return dict(id=key, mel_path=mel_path, n_frames=mel.shape[1], n_mels=mel.shape[0])


def _attempt(make: Callable[[Path], dict], path: Path) -> dict | str:
    """The row for `path`, or the reason it is skipped (every exception becomes that file's reason)."""
    try:
        return make(path)
    except Skip as err:
        return str(err)
    except Exception as err:  # noqa: BLE001 - one bad file never stops the build
        return one_line(err)


def rows_of(files: list[Path], make: Callable[[Path], dict], workers: int = 1) -> Iterator[tuple[Path, dict | str]]:
    """(file, row or skip reason) for each file, in order; `workers` > 1 spreads them over processes."""
    attempt = partial(_attempt, make)
    if workers <= 1 or len(files) < 2:
        yield from zip(files, map(attempt, files), strict=True)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        yield from zip(files, pool.map(attempt, files, chunksize=max(1, min(16, len(files) // (4 * workers)))),
                       strict=True)  # fmt: skip


def write_manifest(results: Iterable[tuple[Path, dict | str]], out: Path, inline: bool) -> BuildResult:
    """Stream rows into out (written as a temporary file, renamed when complete; nothing when no row is good); the
    rows' RESAMPLED rates are counted in the result, not written."""
    fields = [("id", pa.string())]
    if inline:
        fields += [("mel", pa.list_(pa.float32())), ("n_frames", pa.int32()), ("n_mels", pa.int32()),
                   ("source", pa.string())]  # fmt: skip
    else:
        fields += [("mel_path", pa.string()), ("n_frames", pa.int32()), ("n_mels", pa.int32())]
    schema = pa.schema(fields)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f"{out.name}{TEMP_MARK}{os.getpid()}")
    result = BuildResult(out=None)
    chunk: list[dict] = []
    try:
        with pq.ParquetWriter(temp, schema) as writer:
            for path, row in results:
                if isinstance(row, str):
                    result.skipped.append((path, row))
                    continue
                if RESAMPLED in row:
                    result.resampled[row.pop(RESAMPLED)] += 1
                chunk.append(row)
                if len(chunk) == ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                    result.rows, chunk = result.rows + len(chunk), []
            if chunk:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                result.rows += len(chunk)
        if result.rows:
            os.replace(temp, out)
            result.out = out
    finally:
        temp.unlink(missing_ok=True)
    return result
