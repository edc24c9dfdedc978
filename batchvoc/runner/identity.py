"""A job's identity: the settings that change its output and the input manifest it reads, kept in job.json.

The driver records the identity in output.dir when a job starts. A rerun with the same identity resumes
(finishes the missing shards, writes nothing twice); a rerun with another one stops before any work, naming
what differs and how to go on: a new output.dir, or `output.overwrite=true`, which deletes the earlier job's
outputs and starts clean.

Settings: model.preset, the checkpoint's identity (a SHA-256 of the weights file, not its path), the model's
hyper-parameters, engine.precision, output.format and output.subtype, input.shard_seconds (it cuts the shards),
and every check/mel-convention key. Backend, batch, window and cluster settings do not change the audio (beyond
rounding), so a job may resume on other hardware (its shards stay those it was cut into: job.json's
`shard_packing`, runner/resume.OutputHold.shard_packing). Input: each Parquet file's name below the manifest's folder,
size, row-group layout, a SHA-256 of its footer (column chunk sizes, offsets and statistics) and of its content
(local files up to 256 MiB; larger ones by modification time), or the content hash its store keeps (S3 ETag, GCS
md5Hash/crc32c, HF sha256). `.npy` files named by mel_path rows are no part of it: a rerun vocodes again the rows
whose file changed since (manifest/mel_marks.py, runner/resume.OutputHold.redo_changed_mels).
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from batchvoc import __version__, storage
from batchvoc.errors import ConfigError
from batchvoc.manifest.schema import manifest_root
from batchvoc.models.presets import Preset
from batchvoc.outputs import OUTPUT_ENTRIES, RECORD
from batchvoc.settings import JobSettings

CONTENT_KEYS = ("ETag", "etag", "md5Hash", "crc32c", "sha256", "blob_id", "lfs")  # content hashes stores give
TIME_KEYS = ("mtime", "LastModified", "last_modified", "updated", "generation", "VersionId")
CONTENT_DIGEST_MAX = 256 << 20  # local files up to this size get a SHA-256 of their content
CHECK_FIELDS = ("mel_scale", "mel_convention", "max_mel_error")  # JobSettings fields other helpers add


def job_identity(settings: JobSettings, preset: Preset, files: list[str]) -> dict[str, Any]:
    """{"settings": ..., "input": ...}: what the job's output depends on, JSON-ready."""
    return {"settings": output_settings(settings, preset), "input": input_identity(settings.manifest, files)}


def output_settings(settings: JobSettings, preset: Preset) -> dict[str, Any]:
    """The settings that change the output, by their config key."""
    chosen: dict[str, Any] = {
        "model.preset": settings.preset,
        "model.checkpoint": checkpoint_identity(settings.preset, settings.checkpoint),
        "model.hparams": _plain(preset.hparams),
        "model.sample_rate": preset.sample_rate,
        "engine.precision": settings.precision,
        "output.format": settings.fmt,
        "output.subtype": settings.subtype,
        "input.shard_seconds": settings.shard_seconds,
    }
    config = settings.config or {}
    for key, value in sorted((config.get("check") or {}).items()):
        if value is not None:  # unset and absent are the same setting
            chosen[f"check.{key}"] = _plain(value)
    if (config.get("input") or {}).get("mel_scale") is not None:
        chosen["input.mel_scale"] = config["input"]["mel_scale"]
    for name in CHECK_FIELDS:
        value = getattr(settings, name, None)
        if value is not None and not any(k.endswith(f".{name}") for k in chosen):
            chosen[f"check.{name}" if name != "mel_scale" else "input.mel_scale"] = _plain(value)
    return chosen


def checkpoint_identity(preset_name: str, checkpoint: str | None) -> str:
    """`sha256:<hex>` of the weights (and a folder's config.json); `random` for random weights."""
    from batchvoc.models import _folder_weights
    from batchvoc.models.pretrained import PRETRAINED

    ckpt = str(checkpoint or "").strip()
    if ckpt in ("", "random"):
        return ckpt or "none"
    if ckpt == "pretrained":
        files = [PRETRAINED[preset_name]()]
    else:
        path = Path(ckpt).expanduser()
        files = [_folder_weights(path)] if path.is_dir() else [path]
        if path.is_dir() and (path / "config.json").is_file():
            files.append(path / "config.json")
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def input_identity(spec: str | None, files: list[str]) -> dict[str, Any]:
    """The manifest's files by name below its folder, each with size, rows, row groups, footer digest, version."""
    root = manifest_root(spec)
    with ThreadPoolExecutor(8) as pool:  # hashing releases the GIL; object stores answer in parallel
        marks = list(pool.map(file_identity, files))
    return {"manifest": str(spec), "files": {_relative(f, root): m for f, m in zip(files, marks, strict=True)}}


def file_identity(url: str) -> dict[str, Any]:
    """Size, rows, row-group sizes, footer digest and a content mark of one Parquet file (see the module doc)."""
    meta = storage.parquet_file(url).metadata
    with storage.open_input(url) as handle:
        size = handle.seek(0, 2)
        handle.seek(max(size - 8, 0))
        footer_len = int.from_bytes(handle.read(4), "little")
        handle.seek(max(size - 8 - footer_len, 0))
        footer = hashlib.sha256(handle.read(footer_len)).hexdigest()
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    return {"size": size, "rows": meta.num_rows, "row_groups": groups, "footer_sha256": footer,
            "content": content_mark(url, size)}  # fmt: skip


def content_mark(url: str, size: int) -> dict[str, Any]:
    """What tells this file's content apart: a SHA-256 of a local file up to CONTENT_DIGEST_MAX bytes (its
    modification time beyond), the store's content hash (ETag, md5Hash, crc32c, sha256) for a URL."""
    if not storage.is_url(url):
        if size > CONTENT_DIGEST_MAX:
            return {"mtime_ns": Path(url).stat().st_mtime_ns}
        digest = hashlib.sha256()
        with open(url, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        return {"sha256": digest.hexdigest()}
    info = storage.info(url)
    marks = {k: _plain(info[k]) for k in CONTENT_KEYS if info.get(k) not in (None, "")}
    return marks or {k: _plain(info[k]) for k in TIME_KEYS if info.get(k) not in (None, "")}


def _relative(url: str, root: str) -> str:
    if storage.is_url(url) != storage.is_url(root):
        return url
    root = root if storage.is_url(root) else str(Path(root).expanduser().resolve())
    return url[len(root) :].lstrip("/") if url.startswith(root) else url


def compare(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """One line per difference between two identities (empty when they are the same job)."""
    lines = []
    old, new = recorded.get("settings", {}), current["settings"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            lines.append(f"{key}: {_short(old.get(key, 'unset'))} -> {_short(new.get(key, 'unset'))}")
    before, after = recorded.get("input", {}).get("files", {}), current["input"]["files"]
    for name in sorted(set(before) | set(after)):
        if name not in after:
            lines.append(f"input.manifest: {name} is gone")
        elif name not in before:
            lines.append(f"input.manifest: {name} is new")
        elif before[name] != after[name]:
            a, b = before[name], after[name]
            what = [f"{k} {a.get(k)} -> {b.get(k)}" for k in ("rows", "size") if a.get(k) != b.get(k)]
            lines.append(f"input.manifest: {name} changed ({', '.join(what) or 'same size, other content'})")
    return lines


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: Any) -> Any:
    """JSON-comparable form (tuples as lists, other objects as strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def claim(store: storage.Store, identity: dict[str, Any], overwrite: bool) -> str:
    """Record the job in output.dir, or check it is the one recorded; call while holding the job lock.

    Returns "new", "resumed" or "overwritten". Raises ConfigError (key output.dir) naming every difference
    when output.dir holds another job's outputs and `overwrite` is False.
    """
    outputs = [entry for entry in _outputs_present(store) if entry != RECORD]
    recorded = store.read_json(RECORD) if store.exists(RECORD) else None
    if outputs and not overwrite:
        if recorded is None:
            raise ConfigError("output.dir", f"{store.url} holds outputs ({', '.join(outputs)}) of a job whose "
                              "settings were not recorded (an older batchvoc, or another tool); nothing was done. "
                              + _how_to_go_on())  # fmt: skip
        differences = compare(recorded, identity)
        if differences:
            raise ConfigError("output.dir", f"{store.url} holds a job with other settings or input; nothing was "
                              f"done. What differs: {'; '.join(differences)}. " + _how_to_go_on())  # fmt: skip
        return "resumed"
    for entry in outputs:
        store.remove(entry)
    record = dict(identity, batchvoc=__version__, started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    store.write_json(RECORD, record)
    return "overwritten" if outputs else "new"


def _outputs_present(store: storage.Store) -> list[str]:
    names = store.entries()
    return [entry for entry in OUTPUT_ENTRIES if entry in names]


def _how_to_go_on() -> str:
    deleted = ", ".join(entry if "." in entry else f"{entry}/" for entry in OUTPUT_ENTRIES)  # what claim deletes
    return (f"To go on: use a new output.dir, or set output.overwrite=true to delete this job's outputs ({deleted}; "
            "logs/ stays) and start clean.")  # fmt: skip
