"""Chunk-and-pack: cut mels into fixed windows with context, pack them into fixed-shape batches, stitch back.

An utterance's mel [n_mels, T] is cut into pieces of W frames. Each piece travels in a window of L = W + 2C
frames: C frames of context on each side (C >= the model's receptive field), log-mel silence where the window
runs past the utterance. A `valid` [start, end) span per row marks the utterance's real frames inside the
window; the model uses it (through `span.Span`) to re-create whole-utterance padding at the edges, so the
window's centre W*hop samples equal the whole-utterance output. Windows from many utterances fill batches of
B rows; the last batch is filled up with all-silence rows, so the engine only ever sees [B, n_mels, L].

Everything streams: `pack` reads items lazily and `Stitcher` hands back each utterance as soon as its last
piece comes out of the engine, in input order.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Piece:
    """One piece of one utterance: its centre frames [start, start + frames) sit in batch row `row`.

    row is None for an utterance of zero frames (no window; it stitches to empty audio).
    """

    index: int  # utterance number in input order
    key: Hashable
    row: int | None
    start: int
    frames: int
    last: bool


@dataclass
class PackedBatch:
    """A batch ready for an engine: mel [B, n_mels, W + 2C] float32, valid [B, 2] int64, and its pieces."""

    mel: Tensor
    valid: Tensor
    window: int
    context: int
    pieces: list[Piece] = field(default_factory=list)

    @property
    def rows_used(self) -> int:
        """Rows holding real windows (the rest are silence filler)."""
        return sum(p.row is not None for p in self.pieces)


def window_for(context: int, length: int = 512, multiple: int = 32) -> int:
    """The window W for a given context C: W + 2C is `length` rounded up to `multiple` (at least 2C + multiple).

    A fixed, round L = W + 2C keeps the engine on one shape that compilers like; context overhead is 2C / L.
    """
    if context < 0 or length < 1 or multiple < 1:
        raise ValueError(f"bad window parameters: context={context}, length={length}, multiple={multiple}")
    total = max(length, 2 * context + multiple)
    total = math.ceil(total / multiple) * multiple
    return total - 2 * context


def _pieces(frames: int, window: int) -> list[tuple[int, int, bool]]:
    """(start, frames, last) of each piece of an utterance of `frames` frames; one empty piece when frames == 0."""
    if frames == 0:
        return [(0, 0, True)]
    starts = range(0, frames, window)
    return [(s, min(window, frames - s), s + window >= frames) for s in starts]


def _blank(batch: int, n_mels: int, length: int, silence: float) -> tuple[np.ndarray, np.ndarray]:
    """An all-silence batch: mel [batch, n_mels, length] float32 and valid [batch, 2] = [0, length]."""
    mel = np.full((batch, n_mels, length), silence, dtype=np.float32)
    valid = np.tile(np.array([0, length], dtype=np.int64), (batch, 1))
    return mel, valid


def pack(
    items: Iterable[tuple[Hashable, np.ndarray]],
    window: int,
    context: int,
    batch: int,
    silence: float,
) -> Iterator[PackedBatch]:
    """Pack utterances (key, mel [n_mels, T_i]) into batches of `batch` windows of `window + 2*context` frames.

    Rows are filled with `silence` outside the utterance; each row's valid span is the utterance's frames in the
    window. The last batch is filled up with all-silence rows (valid = the whole window). Mels may be float16 or
    float32 numpy arrays (or anything np.asarray takes); every mel must have the same n_mels. Validate rows
    before packing: a bad mel raises here and ends the stream.
    """
    if window < 1 or context < 0 or batch < 1:
        raise ValueError(f"bad packing parameters: window={window}, context={context}, batch={batch}")
    length = window + 2 * context
    mel = valid = n_mels = None
    pieces: list[Piece] = []
    row = 0
    for index, (key, item) in enumerate(items):
        m = np.asarray(item)
        if m.ndim != 2 or (n_mels is not None and m.shape[0] != n_mels):
            expected = "[n_mels, T]" if n_mels is None else f"[{n_mels}, T]"
            raise ValueError(f"item {key!r}: mel of shape {m.shape}, expected {expected}")
        n_mels = m.shape[0]
        frames = m.shape[1]
        for start, n, last in _pieces(frames, window):
            if n == 0:
                pieces.append(Piece(index, key, None, start, 0, last))
                continue
            if mel is None or row == batch:
                if mel is not None:
                    yield PackedBatch(torch.from_numpy(mel), torch.from_numpy(valid), window, context, pieces)
                    pieces = []
                mel, valid = _blank(batch, n_mels, length, silence)
                row = 0
            lo, hi = max(0, start - context), min(frames, start + window + context)
            offset = context - start  # window frame = utterance frame + offset
            mel[row, :, lo + offset : hi + offset] = m[:, lo:hi]
            valid[row] = (lo + offset, hi + offset)
            pieces.append(Piece(index, key, row, start, n, last))
            row += 1
    if pieces:
        if mel is None:  # only empty utterances: an all-filler batch carries them
            mel, valid = _blank(batch, n_mels, length, silence)
        yield PackedBatch(torch.from_numpy(mel), torch.from_numpy(valid), window, context, pieces)


class Stitcher:
    """Reassembles utterances from engine output, in input order, as their last pieces arrive."""

    def __init__(self, hop: int):
        self.hop = hop
        self._index: int | None = None  # utterance in progress
        self._parts: list[np.ndarray] = []

    @property
    def pending(self) -> bool:
        """True while an utterance has pieces but not its last one."""
        return self._index is not None

    def feed(self, packed: PackedBatch, audio: np.ndarray | Tensor) -> list[tuple[Hashable, np.ndarray]]:
        """Take a batch's audio [B, (W + 2C) * hop]; return finished utterances (key, audio [T_i * hop] float32)."""
        if isinstance(audio, Tensor):
            audio = audio.detach().float().cpu().numpy()
        audio = np.asarray(audio).reshape(audio.shape[0], -1)
        expected = (packed.window + 2 * packed.context) * self.hop
        if audio.shape[1] != expected:
            raise ValueError(f"engine returned {audio.shape[1]} samples per row, expected {expected}")
        done = []
        for p in packed.pieces:
            if self._index is not None and p.index != self._index:
                raise ValueError(f"utterance {p.key!r} started before utterance #{self._index} finished")
            if p.row is not None:
                first = packed.context * self.hop
                self._parts.append(audio[p.row, first : first + p.frames * self.hop])
            self._index = p.index
            if p.last:
                parts = self._parts or [np.zeros(0, dtype=np.float32)]
                done.append((p.key, np.concatenate(parts).astype(np.float32, copy=False)))
                self._index, self._parts = None, []
        return done


def vocode(
    engine,
    items: Iterable[tuple[Hashable, np.ndarray]],
    window: int,
    context: int,
    batch: int,
    silence: float,
    hop: int,
) -> Iterator[tuple[Hashable, np.ndarray]]:
    """Run `engine(mel [B, n_mels, L], valid [B, 2]) -> audio [B, L*hop]` over items; yield (key, audio [T_i*hop])."""
    stitcher = Stitcher(hop)
    for packed in pack(items, window, context, batch, silence):
        if packed.rows_used:
            audio = engine(packed.mel, packed.valid)
        else:  # only empty utterances: nothing to run
            audio = np.zeros((batch, (window + 2 * context) * hop), dtype=np.float32)
        yield from stitcher.feed(packed, audio)
    if stitcher.pending:
        raise RuntimeError("stream ended inside an utterance")
