"""Chunk-and-pack: lay utterances end to end into fixed-shape batches, run them, stitch them back.

The engine only ever sees [B, n_mels, L] batches (L = W + 2C: W the window, C >= the model's receptive field).
The B rows of a batch are filled like a tape, left to right and row after row, in input order:

- an utterance that fits in the rest of the row goes there whole, `gap` frames (default C) after the previous
  one; the first segment of a row starts at frame 0;
- one that does not fit is cut: the row takes as much of it as it can (when that is more than C frames, else
  the utterance moves to the next row), and the rest continues at the start of the next row. A cut needs C
  frames of real context on each side: the piece before the cut carries the C frames after it, the piece after
  the cut starts with the C frames before it. A long utterance thus becomes a first piece, whole-row pieces of
  W frames (context on both sides) and a last piece, as in fixed windows, while short utterances share rows.

`valid` [B, 2, L] gives, per frame, the [start, end) row frames of the segment it belongs to (the part of one
utterance in that row, context included); gap and padding frames belong to the nearer segment. The model
re-creates whole-utterance padding at every layer outside each frame's own segment (`span.Span`), so

- at an utterance's true edges the output equals the whole-utterance output, and
- at a cut, the false edge is C frames past the piece's centre, out of the centre's reach;
- two segments in one row do not see each other, as long as the gap exceeds every single layer's reach (the
  masking happens before every layer); `gap = C` is more than enough, since C sums the reaches of all layers.

So every piece's centre audio equals the whole-utterance audio there. Filler (silence, preset.silence) fills
gaps, row tails and unused rows of the last batch.

Everything streams: `pack` reads items lazily (at most one item ahead) and `Stitcher` hands back each
utterance as soon as its last piece comes out of the engine, in input order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Piece:
    """One piece of one utterance: its centre, utterance frames [start, start + frames), sits in batch row `row`
    at row frames [column, column + frames).

    row is None for an utterance of zero frames (nothing to run; it stitches to empty audio).
    """

    index: int  # utterance number in input order
    key: Hashable
    row: int | None
    column: int
    start: int
    frames: int
    last: bool


@dataclass
class PackedBatch:
    """A batch ready for an engine: mel [B, n_mels, L] float32, valid [B, 2, L] int64, and its pieces.

    L = window + 2 * context. `pieces` are in input order, each utterance's pieces one after the other.
    """

    mel: Tensor
    valid: Tensor
    window: int
    context: int
    pieces: list[Piece] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.window + 2 * self.context

    @property
    def rows_used(self) -> int:
        """Rows holding real frames (the rest are silence filler)."""
        return len({p.row for p in self.pieces if p.row is not None})

    @property
    def real_frames(self) -> int:
        """Frames whose audio is kept: the pieces' centres (context, gaps and filler are overhead)."""
        return sum(p.frames for p in self.pieces)

    @property
    def fill(self) -> float:
        """real_frames / (B * L): the share of the engine's work that is kept."""
        return self.real_frames / (self.mel.shape[0] * self.length)


ROW_LENGTH = 1024  # default L = W + 2C: context costs 2C/L of the work (BigVGAN v2 24k: 7%), and 10 s items
# of a 100 frames/s model (gsv_v4) fill one row each


def window_for(context: int, length: int = ROW_LENGTH, multiple: int = 32) -> int:
    """The window W for a given context C: W + 2C is `length` rounded up to `multiple` (at least 2C + multiple).

    A fixed, round L = W + 2C keeps the engine on one shape that compilers like.
    """
    if context < 0 or length < 1 or multiple < 1:
        raise ValueError(f"bad window parameters: context={context}, length={length}, multiple={multiple}")
    total = max(length, 2 * context + multiple)
    total = math.ceil(total / multiple) * multiple
    return total - 2 * context


def row_bounds(segments: list[tuple[int, int]], length: int) -> np.ndarray:
    """valid [2, length] for one row holding `segments` [(lo, hi), ...] (ascending, disjoint): per frame, the
    segment it belongs to. Frames between two segments go to the nearer one (ties: the left one); frames before
    the first / after the last to it. A row with no segment is one segment [0, length)."""
    bounds = np.empty((2, length), dtype=np.int64)
    if not segments:
        bounds[0], bounds[1] = 0, length
        return bounds
    middles = [(hi + lo + 1) // 2 for (_, hi), (lo, _) in zip(segments[:-1], segments[1:], strict=True)]
    cuts = [0, *middles, length]
    for (lo, hi), a, b in zip(segments, cuts[:-1], cuts[1:], strict=True):
        bounds[0, a:b], bounds[1, a:b] = lo, hi
    return bounds


class _Batch:
    """A batch being filled: mel, the segments of each row, the pieces in input order."""

    def __init__(self, batch: int, n_mels: int, length: int, silence: float):
        self.mel = np.full((batch, n_mels, length), silence, dtype=np.float32)
        self.segments: list[list[tuple[int, int]]] = [[] for _ in range(batch)]
        self.pieces: list[Piece] = []

    def put(self, row: int, column: int, mel: np.ndarray) -> None:
        self.mel[row, :, column : column + mel.shape[1]] = mel
        self.segments[row].append((column, column + mel.shape[1]))

    def finish(self, window: int, context: int) -> PackedBatch:
        length = self.mel.shape[2]
        valid = np.stack([row_bounds(s, length) for s in self.segments])
        return PackedBatch(torch.from_numpy(self.mel), torch.from_numpy(valid), window, context, self.pieces)


def pack(
    items: Iterable[tuple[Hashable, np.ndarray]],
    window: int,
    context: int,
    batch: int,
    silence: float,
    gap: int | None = None,
) -> Iterator[PackedBatch]:
    """Pack utterances (key, mel [n_mels, T_i]) into batches [batch, n_mels, window + 2*context] (module doc).

    gap: filler frames between two utterances sharing a row; default `context`. Smaller gaps stay exact only
    while they exceed the reach of every single layer of the model (see tests/test_batching.py); 0 is wrong.
    Mels may be float16 or float32 numpy arrays (or anything np.asarray takes); every mel must have the same
    n_mels. Validate rows before packing: a bad mel raises here and ends the stream.
    """
    gap = context if gap is None else gap
    if window < 1 or context < 0 or batch < 1 or gap < 0:
        raise ValueError(f"bad packing parameters: window={window}, context={context}, batch={batch}, gap={gap}")
    length = window + 2 * context
    current: _Batch | None = None
    n_mels = None
    row = column = 0  # where the next segment may start (after a gap when column > 0)
    for index, (key, item) in enumerate(items):
        m = np.asarray(item)
        if m.ndim != 2 or (n_mels is not None and m.shape[0] != n_mels):
            expected = "[n_mels, T]" if n_mels is None else f"[{n_mels}, T]"
            raise ValueError(f"item {key!r}: mel of shape {m.shape}, expected {expected}")
        n_mels, frames = m.shape
        if frames == 0:
            if current is None:
                current = _Batch(batch, n_mels, length, silence)
            current.pieces.append(Piece(index, key, None, 0, 0, 0, True))
            continue
        start = 0  # first utterance frame not yet placed
        while start < frames:
            if current is None:
                current = _Batch(batch, n_mels, length, silence)
            lead = min(context, start)  # real context before the piece (only after a cut)
            at = column + gap if column else 0
            room = length - at
            if lead + frames - start <= room:  # the rest fits: last piece
                n = frames - start
                last = True
            else:
                n = room - lead - context  # cut: keep C frames of context after the piece
                last = False
                if n <= context and column:  # cheaper to leave the row's tail empty
                    n = 0
            if n > 0:
                segment = m[:, start - lead : (frames if last else start + n + context)]
                current.put(row, at, segment)
                current.pieces.append(Piece(index, key, row, at + lead, start, n, last))
                start += n
                column = at + segment.shape[1]
            if n == 0 or not last or column + gap >= length:  # row full: next row, maybe next batch
                row, column = row + 1, 0
                if row == batch:
                    yield current.finish(window, context)
                    current, row = None, 0
    if current is not None and current.pieces:
        yield current.finish(window, context)


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
        """Take a batch's audio [B, L * hop]; return finished utterances (key, audio [T_i * hop] float32)."""
        if isinstance(audio, Tensor):
            audio = audio.detach().float().cpu().numpy()
        audio = np.asarray(audio).reshape(audio.shape[0], -1)
        expected = packed.length * self.hop
        if audio.shape[1] != expected:
            raise ValueError(f"engine returned {audio.shape[1]} samples per row, expected {expected}")
        done, kept = [], len(self._parts)
        for p in packed.pieces:
            if self._index is not None and p.index != self._index:
                raise ValueError(f"utterance {p.key!r} started before utterance #{self._index} finished")
            if p.row is not None:
                first = p.column * self.hop
                self._parts.append(audio[p.row, first : first + p.frames * self.hop])
            self._index = p.index
            if p.last:
                parts = self._parts or [np.zeros(0, dtype=np.float32)]
                done.append((p.key, np.concatenate(parts).astype(np.float32, copy=False)))
                self._index, self._parts, kept = None, [], 0
        # parts of an unfinished utterance outlive `audio`, whose buffer the next batches' copies reuse: own them
        self._parts[kept:] = [np.array(part) for part in self._parts[kept:]]
        return done


def vocode(
    engine,
    items: Iterable[tuple[Hashable, np.ndarray]],
    window: int,
    context: int,
    batch: int,
    silence: float,
    hop: int,
    gap: int | None = None,
) -> Iterator[tuple[Hashable, np.ndarray]]:
    """Run `engine(mel [B, n_mels, L], valid [B, 2, L]) -> audio [B, L*hop]` over items; yield (key, audio
    [T_i*hop]) in input order.

    On a GPU the next batch is packed and launched before the previous one's audio is copied back (through
    pinned buffers), so the device does not wait on the host between batches.
    """
    stitcher = Stitcher(hop)
    to_host = _HostCopies()
    waiting: tuple[PackedBatch, Callable[[], np.ndarray]] | None = None
    for packed in pack(items, window, context, batch, silence, gap):
        if packed.rows_used:
            audio = to_host(engine(packed.mel, packed.valid))
        else:  # only empty utterances: nothing to run
            zeros = np.zeros((batch, packed.length * hop), dtype=np.float32)
            audio = lambda zeros=zeros: zeros  # noqa: E731
        if waiting is not None:
            yield from stitcher.feed(waiting[0], waiting[1]())
        waiting = (packed, audio)
    if waiting is not None:
        yield from stitcher.feed(waiting[0], waiting[1]())
    if stitcher.pending:
        raise RuntimeError("stream ended inside an utterance")


class _HostCopies:
    """Starts device-to-host copies into two alternating pinned buffers, on a copy stream of their own (so the next
    batch's kernels need not wait for them); each call returns a `wait()` for one."""

    def __init__(self):
        self._buffers: list[Tensor] = []
        self._turn = 0
        self._stream: torch.cuda.Stream | None = None

    def __call__(self, audio) -> Callable[[], np.ndarray]:
        if not isinstance(audio, Tensor) or audio.device.type != "cuda":
            host = audio.detach().float().cpu().numpy() if isinstance(audio, Tensor) else np.asarray(audio)
            return lambda: host
        audio = audio.detach().float()
        if not self._buffers or self._buffers[0].shape != audio.shape:
            self._buffers = [torch.empty(audio.shape, dtype=torch.float32, pin_memory=True) for _ in range(2)]
        buffer = self._buffers[self._turn]
        self._turn ^= 1
        if self._stream is None or self._stream.device != audio.device:
            self._stream = torch.cuda.Stream(audio.device)
        self._stream.wait_stream(torch.cuda.current_stream(audio.device))
        with torch.cuda.stream(self._stream):
            buffer.copy_(audio, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self._stream)
        audio.record_stream(self._stream)  # the allocator must not hand its memory out before the copy ends

        def wait() -> np.ndarray:
            done.synchronize()
            return buffer.numpy()

        return wait
