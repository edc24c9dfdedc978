"""Marks of the `.npy` mel files that mel_path rows name: what tells a rewritten file from the one a row was
vocoded from, without reading it.

A worker takes its shard's marks before it reads any row (`shard_marks`) and its stats keep those of the rows it
wrote audio for (stats/<shard>.json `mel_marks`: id -> [mel_path as the manifest says it, mark]; failed rows have
no audio to be stale, and stay failed unless output.retry_failed); a rerun takes them again for the finished
shards (`changed_rows`) and runs again the shards whose rows' files changed since. A mark is one
metadata call per file, never a read: a local file's size and modification time in nanoseconds
(`size:mtime_ns`), an object store's content hash (S3 ETag, GCS md5Hash / crc32c, ...) or, where it gives none,
its size and modification time; `None` for a file that was not there. A file rewritten with the same size
and its old modification time restored (`cp -p`, `rsync -a` of other content) keeps its mark and is not noticed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from batchvoc import storage
from batchvoc.errors import RowError
from batchvoc.manifest.rows import _folder_of, _mel_file
from batchvoc.manifest.shards import Shard

MARK_KEY = "mel_marks"  # stats/<shard>.json's key
MARK_THREADS = 32  # an object store's metadata requests at once (each tens of ms)
CONTENT_KEYS = ("ETag", "etag", "md5Hash", "crc32c", "sha256")  # content hashes stores give, in their info
TIME_KEYS = ("mtime", "LastModified", "last_modified", "updated", "generation")


def file_mark(url: str) -> str | None:
    """The mark of one mel file (module doc); None where it does not exist or cannot be reached."""
    try:
        if not storage.is_url(url):
            st = os.stat(url)
            return f"{st.st_size}:{st.st_mtime_ns}"
        fs, path = storage.filesystem(url)
        fs.invalidate_cache(path)  # the store's answer now, not a listing this process cached before
        info = fs.info(path)
    except (OSError, ValueError):
        return None
    for key in CONTENT_KEYS:
        if info.get(key) not in (None, ""):
            return f"{key}:{info[key]}"
    times = [str(info[k]) for k in TIME_KEYS if info.get(k) not in (None, "")]
    return ":".join([str(info.get("size")), *times[:1]])


def marks_of(urls: Iterable[str]) -> dict[str, str | None]:
    """file_mark of each url: local files one after another (a warm stat takes ~3 us: 100,000 in 0.31 s on 2
    cores, where 32 threads took 2.4 s), URLs MARK_THREADS at a time (each a request to the store)."""
    urls = list(dict.fromkeys(urls))
    remote = [url for url in urls if storage.is_url(url)]
    marks = {url: file_mark(url) for url in urls if not storage.is_url(url)}
    if remote:
        with ThreadPoolExecutor(min(MARK_THREADS, len(remote)), thread_name_prefix="mel-mark") as pool:
            marks.update(zip(remote, pool.map(file_mark, remote), strict=True))
    return marks


def shard_mel_paths(shard: Shard) -> dict[str, str]:
    """id -> mel_path (as the manifest says it) of the shard's rows that name a mel file; {} where the manifest
    has no mel_path column, or a mel column (which makes mel_path unread). Reads those two columns only."""
    parquet = storage.parquet_file(shard.file)
    names = parquet.schema_arrow.names
    if "mel_path" not in names or "mel" in names or "id" not in names:
        return {}
    table = parquet.read_row_groups(list(shard.row_groups), columns=["id", "mel_path"])
    table = table.slice(shard.start - shard.first_row, shard.stop - shard.start)
    ids, paths = table.column("id").to_pylist(), table.column("mel_path").to_pylist()
    return {str(key): path for key, path in zip(ids, paths, strict=True) if key is not None and path}


def resolved(shard: Shard, mel_paths: dict[str, str]) -> dict[str, str]:
    """id -> the mel file's path or URL, resolved against the shard's manifest folder (rows whose mel_path cannot
    be resolved, which fail as they are read, left out)."""
    folder, found = _folder_of(shard.file), {}
    for key, path in mel_paths.items():
        try:
            found[key] = _mel_file(path, folder)
        except RowError:
            continue
    return found


def shard_marks(shard: Shard) -> dict[str, list[Any]]:
    """What a shard's stats keep (MARK_KEY): id -> [mel_path, mark] of each row naming a mel file; taken before
    the rows are read, so a file rewritten while the shard runs is noticed by the next rerun."""
    paths = shard_mel_paths(shard)
    where = resolved(shard, paths)
    marks = marks_of(where.values())
    return {key: [paths[key], marks[url]] for key, url in where.items()}


def changed_rows(shards: list[Shard], stats: dict[str, dict[str, Any] | None]) -> dict[str, list[str]]:
    """Shard name -> the ids whose mel file's mark differs from the one its stats kept (rewritten since the shard
    finished, or there now where it was missing), for the `shards` whose stats (finished_stats) keep marks; shards
    with none changed left out. A file gone since is no change: its row's audio stands (mels deleted once
    vocoded are no reason to lose their audio). One metadata call per mel file (MARK_THREADS at a time)."""
    kept: dict[str, dict[str, list[Any]]] = {}
    now_of: dict[tuple[str, str], str] = {}  # (shard, id) -> url
    for shard in shards:
        marks = (stats.get(shard.name) or {}).get(MARK_KEY)
        if not isinstance(marks, dict) or not marks:
            continue
        kept[shard.name] = marks
        where = resolved(shard, {key: entry[0] for key, entry in marks.items()})
        now_of.update({(shard.name, key): url for key, url in where.items()})
    now = marks_of(now_of.values())
    changed: dict[str, list[str]] = {}
    for (name, key), url in now_of.items():
        if now[url] is not None and now[url] != kept[name][key][1]:  # gone since: its audio stays
            changed.setdefault(name, []).append(key)
    return changed
