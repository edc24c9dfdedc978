"""Deprecated: the old home of chunk-and-pack, kept for callers not yet moved (removed this session).

Chunking is batchvoc/chunking.py (numpy only); the device stream is batchvoc/stream.py.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator

import numpy as np

from batchvoc.chunking import ChunkPlan as _ChunkPlan
from batchvoc.chunking import PackedBatch, Piece, Stitcher, chunk_frames_for, pack
from batchvoc.stream import VocoderStream as _VocoderStream

__all__ = ["PackedBatch", "Piece", "Stitcher", "pack", "vocode", "window_for"]

window_for = chunk_frames_for


def vocode(engine, items: Iterable[tuple[Hashable, np.ndarray]], window: int, context: int, batch: int,
           silence: float, hop: int, gap: int | None = None) -> Iterator[tuple[Hashable, np.ndarray]]:  # fmt: skip
    """(key, audio [T_i * hop]) in input order: VocoderStream without the round trip."""
    plan = _ChunkPlan(window, context, batch, silence, hop, gap)
    for done in _VocoderStream(engine, plan, sample_rate=1).vocode(items):
        if done.error is not None:
            raise RuntimeError(done.error)
        yield done.key, done.audio
