"""Shared test fixtures: small real Parquet manifests, one local Ray cluster for the whole session, one_thread.

Two copies of the suite can run side by side on one machine: each session gets its own Ray temp dir (RAY_TMPDIR,
so its clusters' session folders, sockets and `session_latest` link are its own), its own Ray auth token (in the
environment: nothing read from or written to ~/.ray), and its own engine cache (BATCHVOC_CACHE). Subprocesses
(`python -m batchvoc` in tests) inherit all three. No test stops a Ray it did not start or signals a process
it did not start (tests/raycluster.py stops its head node by its own pid).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tests.speech import speech  # noqa: F401 - the session fixture: real speech by espeak-ng (h3)

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="bvt-"))  # short: Ray's socket paths must fit in 107 bytes


def pytest_configure(config):
    """This session's own Ray temp dir, auth token and engine cache (see the module docstring)."""
    os.environ["RAY_TMPDIR"] = str(_SESSION_DIR)
    os.environ["RAY_AUTH_MODE"] = "token"  # keep Ray's token authentication on, as users get it
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    os.environ.pop("RAY_ADDRESS", None)  # never join a cluster this session did not start
    os.environ["BATCHVOC_CACHE"] = str(_SESSION_DIR / "batchvoc-cache")


def pytest_unconfigure(config):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


def random_log_mel(rng: np.random.Generator, n_mels: int, frames: int) -> np.ndarray:
    """A random log-mel-like [n_mels, frames] float32: around -6, spread 2, at most 2.0, below the ~2.4 a
    full-scale signal makes (manifest/conventions.py marks a mel peaking 0.3 above it too loud)."""
    return np.minimum(-6 + 2 * rng.standard_normal((n_mels, frames)), 2.0).astype(np.float32)


def mel_rows(count: int, n_mels: int, frames: Iterable[int] | int = 40, prefix: str = "utt", seed: int = 0) -> list:
    """Rows with inline mels: log-mel-like values around -6 (random_log_mel), [n_mels, n_frames] each."""
    rng = np.random.default_rng(seed)
    frames = [frames] * count if isinstance(frames, int) else list(frames)
    rows = []
    for i, n in enumerate(frames):
        mel = random_log_mel(rng, n_mels, n)
        rows.append(dict(id=f"{prefix}_{i:04d}", mel=mel.ravel(), n_frames=n, n_mels=n_mels, speaker=f"s{i % 3}"))
    return rows


def write_manifest(path: Path, rows: list[dict], row_group_size: int = 16) -> Path:
    """Write rows (inline mel or mel_path) to a Parquet file with the manifest's column types."""
    fields = [("id", pa.string())]
    if any("mel" in r for r in rows):
        fields += [("mel", pa.list_(pa.float32())), ("n_frames", pa.int32()), ("n_mels", pa.int32())]
    if any("mel_path" in r for r in rows):
        fields += [("mel_path", pa.string())]
    names = {name for name, _ in fields}
    extra = sorted({k for r in rows for k in r} - names)
    fields += [(k, pa.string()) for k in extra]
    schema = pa.schema(fields)
    table = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray with 2 CPUs for every test that needs it (a start costs ~5 s)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def one_thread():
    """Small tensors: one intra-op thread is as fast, and immune to OpenMP spin-waits on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
