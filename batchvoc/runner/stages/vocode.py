"""The vocode stage: checked rows through the device stream, in the pipeline's own thread (the device's).

Good rows (a mel [n_mels, n_frames]) go to the VocoderStream; every other row (bad, or already written) passes
straight on to the write stage. Each row leaves as one `Vocoded`, in the order its result is known.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from batchvoc.manifest import MelRow
from batchvoc.roundtrip import AudioCheck
from batchvoc.runner.stages.channel import Channel
from batchvoc.stream import VocoderStream


@dataclass
class Vocoded:
    """One row for the write stage: audio [n_samples] float32 and its checks, or the error that stopped it, or
    `written` (a previous run wrote its audio). `warning`: the convention the mel may be in (check.mel_convention=warn
    let it through, or only a doubt: the row is then suspect)."""

    index: int
    id: str
    audio: np.ndarray | None = None
    check: AudioCheck | None = None
    error: str | None = None
    written: bool = False
    warning: str | None = None


@dataclass
class VocodeTimes:
    """What the stage did: rows and frames sent to the device, seconds spent (not waiting for rows), packing efficiency,
    and when (perf_counter) its first good row came and its first audio left: a shard's start-up."""

    rows: int = 0
    frames: int = 0
    seconds: float = 0.0
    packing_efficiency: float = 0.0
    first_row_at: float | None = None
    first_audio_at: float | None = None


def vocode_rows(rows: Channel[MelRow], stream: VocoderStream, n_mels: int, out: Channel[Vocoded],
                progress: Callable[[float], None] | None = None,
                stop: Callable[[], str | None] | None = None) -> VocodeTimes:  # fmt: skip
    """Vocode the good rows of `rows` into `out`; pass the others on. Raises what the stream raises for the
    whole shard (a broken device); one row's fault becomes that row's error.

    stop: asked before each row; a reason means "vocode no more rows" (e.g. the disk is full: their writes would
    fail the same way), and each remaining good row gets it as its error."""
    times = VocodeTimes()
    ids: deque[tuple[str, str | None]] = deque()  # (id, warning) of the rows in the stream, in input order
    started = time.perf_counter()

    def good_rows() -> Iterator[tuple[int, np.ndarray]]:
        for row in rows:
            if row.mel is None:
                out.put(Vocoded(row.index, row.id, error=row.error, written=row.error is None))
                continue
            reason = stop() if stop is not None else None
            if reason is not None:
                out.put(Vocoded(row.index, row.id, error=reason))
                continue
            mel = row.mel
            if mel.ndim != 2 or mel.shape[0] != n_mels or mel.shape[1] == 0:
                out.put(Vocoded(row.index, row.id, error=f"mel of shape {list(mel.shape)}, expected [{n_mels}, T>0]"))
                continue
            times.rows += 1
            times.frames += mel.shape[1]
            times.first_row_at = times.first_row_at or time.perf_counter()
            ids.append((row.id, row.warning))
            yield row.index, mel

    for done in stream.vocode(good_rows(), progress):
        times.first_audio_at = times.first_audio_at or time.perf_counter()
        key, warning = ids.popleft()
        if done.error is not None:
            out.put(Vocoded(done.key, key, error=done.error))
        else:
            check = AudioCheck.from_sums(done.sums)
            out.put(Vocoded(done.key, key, audio=done.audio, check=check, warning=warning))
    times.seconds = time.perf_counter() - started - rows.waited
    times.packing_efficiency = stream.packing_efficiency
    return times
