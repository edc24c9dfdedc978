"""Chunking: cut utterances' mels into chunks with context, pack them into fixed-shape batches, stitch audio back.

numpy only (no torch, no device): the device stream (batchvoc/stream.py) runs the batches.

The engine only ever sees [B, n_mels, L] batches (L = chunk + 2 * context; context C >= the model's receptive
field). The B rows of a batch are filled like a tape (sequence packing), left to right and row after row, in
input order:

- an utterance that fits in the rest of the row goes there whole, `gap` frames (default C) after the previous
  one; the first segment of a row starts at frame 0;
- one that does not fit is cut: the row takes as much of it as it can (when that is more than C frames, else
  the utterance moves to the next row), and the rest continues at the start of the next row. A cut needs C
  frames of real context on each side (overlap-save): the piece before the cut carries the C frames after it,
  the piece after the cut starts with the C frames before it. A long utterance thus becomes a first piece,
  whole-row pieces of `chunk` frames (context on both sides) and a last piece, while short utterances share rows.

`bounds` [B, 2, L] are the segment bounds: per frame, the [start, end) row frames of the segment it belongs to
(the part of one utterance in that row, context included); gap and padding frames belong to the nearer
segment. The model re-creates whole-utterance padding at every layer outside each frame's own segment
(`models/span.py`), so every piece's centre audio equals the whole-utterance audio there, and two segments in
one row do not see each other as long as the gap exceeds every single layer's reach (`gap = C` is more than
enough). Gaps, row tails and unused rows of the last batch hold the log-mel floor (log of the front end's clip,
about -11.5: the log-mel of silence), never zeros, which would make a buzz.

A `NEW_ROW` among the items starts the next utterance at the start of a row: the utterances after it are laid
out exactly as they would be alone (same columns, rows shifted), the rows before it as they were. An utterance's
samples depend on its column (the CPU convolutions round differently at another offset, ~1e-6 of full scale) but
not on its row, so items packed after a NEW_ROW vocode bit for bit as in a stream of their own (the device feed,
runner/stages/vocode.py, puts one between two shards).

Everything streams: `pack` reads items lazily (at most one item ahead) and `Stitcher` hands back each utterance
as soon as its last piece comes back, in input order.

`Tape` is the layout alone, on frame counts (no mel): `pack` places every utterance through one, and the shard
planner (manifest/shards.py) counts with one the rows, and so the batches, a shard's utterances will fill.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

ROW_LENGTH = 1024  # L = chunk + 2C where no device or model says otherwise (device_defaults.py: a GPU's rows hold
# 10 s of frames): context costs 2C/L of a cut utterance's work (BigVGAN v2 24k: 7%)
ROW_MULTIPLE = 8  # L is rounded up to this: tensor-core tiles take rows of 8 (an H200 ran gsv_v4 as fast per
# frame in rows of 1,000 frames as of 1,024)


@dataclass(frozen=True)
class ChunkPlan:
    """How utterances are cut and packed for one engine shape: `batch` rows of `chunk_frames + 2 * context`.

    chunk_frames: frames kept per whole row; context: frames each side (>= the model's receptive field);
    log_mel_floor: what pads (natural-log units, log(clip), about -11.5); hop: output samples per frame; gap:
    frames between two utterances sharing a row (None: `context`). Raises ValueError for impossible values.
    """

    chunk_frames: int
    context: int
    batch: int
    log_mel_floor: float
    hop: int
    gap: int | None = None

    def __post_init__(self):
        gap = self.context if self.gap is None else self.gap
        if self.chunk_frames < 1 or self.context < 0 or self.batch < 1 or gap < 0 or self.hop < 1:
            raise ValueError(f"bad chunk plan: {self}")

    @classmethod
    def for_model(cls, context: int, batch: int, log_mel_floor: float, hop: int, chunk_frames: int | None = None,
                  length: int = ROW_LENGTH) -> ChunkPlan:  # fmt: skip
        """The plan for a model of receptive field `context`; chunk_frames None: chunk_frames_for(context, length)."""
        chunk = int(chunk_frames) if chunk_frames else chunk_frames_for(int(context), length)
        return cls(chunk, int(context), int(batch), float(log_mel_floor), int(hop))

    @property
    def length(self) -> int:
        """L = chunk_frames + 2 * context: frames per row."""
        return self.chunk_frames + 2 * self.context

    @property
    def shape(self) -> tuple[int, int]:
        """(B, L): the one engine input shape."""
        return self.batch, self.length


def chunk_frames_for(context: int, length: int = ROW_LENGTH, multiple: int = ROW_MULTIPLE) -> int:
    """The chunk frames for context C: chunk + 2C is `length` rounded up to `multiple` (at least 2C + multiple).

    A fixed, round L = chunk + 2C keeps the engine on one shape that compilers like.
    """
    if context < 0 or length < 1 or multiple < 1:
        raise ValueError(f"bad chunk parameters: context={context}, length={length}, multiple={multiple}")
    total = max(length, 2 * context + multiple)
    total = math.ceil(total / multiple) * multiple
    return total - 2 * context


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
    """A batch ready for an engine: mel [B, n_mels, L] float32, bounds [B, 2, L] int64 (segment bounds), and its
    pieces (in input order, each utterance's pieces one after the other). L = chunk + 2 * context."""

    mel: np.ndarray
    bounds: np.ndarray
    chunk: int
    context: int
    pieces: list[Piece] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.chunk + 2 * self.context

    @property
    def rows_used(self) -> int:
        """Rows holding real frames (the rest are log-mel floor filler)."""
        return len({p.row for p in self.pieces if p.row is not None})

    @property
    def real_frames(self) -> int:
        """Frames whose audio is kept: the pieces' centres (context, gaps and filler are overhead)."""
        return sum(p.frames for p in self.pieces)

    @property
    def packing_efficiency(self) -> float:
        """real_frames / (B * L): the share of the engine's work that is kept."""
        return self.real_frames / (self.mel.shape[0] * self.length)


def segment_bounds(segments: list[tuple[int, int]], length: int) -> np.ndarray:
    """bounds [2, length] for one row holding `segments` [(lo, hi), ...] (ascending, disjoint): per frame, the
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

    def __init__(self, batch: int, n_mels: int, length: int, floor: float):
        self.mel = np.full((batch, n_mels, length), floor, dtype=np.float32)
        self.segments: list[list[tuple[int, int]]] = [[] for _ in range(batch)]
        self.pieces: list[Piece] = []

    def put(self, row: int, column: int, mel: np.ndarray) -> None:
        self.mel[row, :, column : column + mel.shape[1]] = mel
        self.segments[row].append((column, column + mel.shape[1]))

    def finish(self, chunk: int, context: int) -> PackedBatch:
        length = self.mel.shape[2]
        bounds = np.stack([segment_bounds(s, length) for s in self.segments])
        return PackedBatch(self.mel, bounds, chunk, context, self.pieces)


@dataclass(frozen=True)
class Placement:
    """Where one piece of an utterance goes on a Tape: tape row `row` (rows counted from the tape's start), row
    frames [at, at + hi - lo) hold utterance frames [lo, hi) (context included), whose centre is utterance frames
    [start, start + frames)."""

    row: int
    at: int
    lo: int
    hi: int
    start: int
    frames: int
    last: bool


class Tape:
    """pack()'s layout from frame counts alone (module doc): where each utterance's pieces go, row after row of
    `chunk + 2 * context` frames, rows counted from the tape's start (pack's batch k holds rows [k*B, (k+1)*B)).

    pack() places every utterance through one, so a planner that counts rows with a Tape (the shard planner,
    manifest/shards.py) counts what pack() will make. Raises ValueError for impossible parameters.
    """

    def __init__(self, chunk: int, context: int, gap: int | None = None):
        gap = context if gap is None else gap
        if chunk < 1 or context < 0 or gap < 0:
            raise ValueError(f"bad packing parameters: chunk={chunk}, context={context}, gap={gap}")
        self.length, self.context, self.gap = chunk + 2 * context, context, gap
        self.row = 0  # where the next segment may start (after a gap when column > 0)
        self.column = 0

    @property
    def rows(self) -> int:
        """Rows begun so far (the last one possibly part-filled)."""
        return self.row + (1 if self.column else 0)

    @property
    def position(self) -> int:
        """Frames of tape used so far, row tails left empty included: row * length + column."""
        return self.row * self.length + self.column

    def new_row(self) -> None:
        """The next utterance starts at the start of a row (the current row's tail stays empty, if it has begun)."""
        if self.column:
            self.row, self.column = self.row + 1, 0

    def place(self, frames: int) -> list[Placement]:
        """Lay out one utterance of `frames` frames (0: nothing) after the ones before; its pieces in order."""
        pieces: list[Placement] = []
        self._lay(frames, pieces)
        return pieces

    def advance(self, frames: int) -> None:
        """place() without the pieces: only where the tape stands after them (a planner's count, ~1 us a row)."""
        self._lay(frames, None)

    def _lay(self, frames: int, pieces: list[Placement] | None) -> None:
        length, context, gap = self.length, self.context, self.gap
        row, column = self.row, self.column
        start = 0  # first utterance frame not yet placed
        while start < frames:
            lead = start if start < context else context  # real context before the piece (only after a cut)
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
                hi = frames if last else start + n + context
                if pieces is not None:
                    pieces.append(Placement(row, at, start - lead, hi, start, n, last))
                column = at + hi - (start - lead)
                start += n
            if n == 0 or not last or column + gap >= length:  # row full: next row
                row, column = row + 1, 0
        self.row, self.column = row, column


def packed_rows(frames: Iterable[int], plan: ChunkPlan) -> int:
    """Rows pack_plan() fills for utterances of these frame counts, in this order (its batches: ceil(rows / B))."""
    tape = Tape(plan.chunk_frames, plan.context, plan.gap)
    for n in frames:
        tape.advance(int(n))
    return tape.rows


def fitted_plan(plan: ChunkPlan, frames: Iterable[int], powers: bool = True) -> ChunkPlan:
    """`plan` cut down to what utterances of these frame counts fill, for an engine that takes any shape (eager):
    where they all fit in one part-filled row, rows of the frames they use (context and gaps included, at least
    2 * context + 1), rounded up to a power of two (`powers`; else to ROW_MULTIPLE); batches of no more rows than
    they fill, rounded up to a power of two. Neither exceeds the plan's own. A short mel then runs on a row of its
    own size, not on a whole row of log-mel silence (1 frame: 32 frames, not hifigan_v1's 512 on a CPU); powers
    of two keep the shapes few where each new one costs (a GPU's cuDNN times each once), ROW_MULTIPLE wastes less
    (a stream's chunks of 7 frames plus 2 x 13 of context: rows of 40, not 64). The audio is the full plan's: rows
    are independent and the model re-creates each utterance's edges inside a row."""
    tape = Tape(plan.chunk_frames, plan.context, plan.gap)
    for n in frames:
        tape.advance(int(n))
    if tape.rows == 0:
        return plan
    batch = min(plan.batch, 1 << (tape.rows - 1).bit_length())
    chunk = plan.chunk_frames
    if tape.row == 0:  # one part-filled row: `tape.column` frames of it used
        used = max(tape.column, 2 * plan.context + 1)
        length = 1 << (used - 1).bit_length() if powers else math.ceil(used / ROW_MULTIPLE) * ROW_MULTIPLE
        chunk = min(plan.chunk_frames, length - 2 * plan.context)
    return replace(plan, chunk_frames=chunk, batch=batch)


class NewRow:
    """The type of NEW_ROW: an item of pack()'s input that is no utterance (module doc)."""


NEW_ROW = NewRow()


def pack(
    items: Iterable[tuple[Hashable, np.ndarray] | NewRow],
    chunk: int,
    context: int,
    batch: int,
    floor: float,
    gap: int | None = None,
) -> Iterator[PackedBatch]:
    """Pack utterances (key, mel [n_mels, T_i]) into batches [batch, n_mels, chunk + 2*context] (module doc).

    floor: the log-mel floor that fills gaps and unused rows. gap: filler frames between two utterances sharing a
    row; default `context`. Smaller gaps stay exact only while they exceed the reach of every single layer of
    the model (tests/test_chunking.py); 0 is wrong. Mels may be float16 or float32 arrays (anything np.asarray
    takes); every mel must have the same n_mels. Raises ValueError for a mel of another shape (validate rows
    before packing: it ends the stream). The layout is a Tape's; a NEW_ROW item calls its new_row().
    """
    if batch < 1:
        raise ValueError(f"bad packing parameters: chunk={chunk}, context={context}, batch={batch}, gap={gap}")
    tape = Tape(chunk, context, gap)
    length = tape.length
    current: _Batch | None = None
    number = 0  # the batch `current` is: it holds tape rows [number * batch, (number + 1) * batch)
    n_mels = None
    for index, (key, item) in enumerate(_utterances(items, tape)):
        m = np.asarray(item)
        if m.ndim != 2 or (n_mels is not None and m.shape[0] != n_mels):
            expected = "[n_mels, T]" if n_mels is None else f"[{n_mels}, T]"
            raise ValueError(f"item {key!r}: mel of shape {m.shape}, expected {expected}")
        n_mels, frames = m.shape
        if frames == 0:
            if current is None:
                current, number = _Batch(batch, n_mels, length, floor), tape.row // batch
            current.pieces.append(Piece(index, key, None, 0, 0, 0, True))
            continue
        for p in tape.place(frames):
            if current is not None and p.row // batch != number:
                yield current.finish(chunk, context)
                current = None
            if current is None:
                current, number = _Batch(batch, n_mels, length, floor), p.row // batch
            row = p.row % batch
            current.put(row, p.at, m[:, p.lo : p.hi])
            current.pieces.append(Piece(index, key, row, p.at + p.start - p.lo, p.start, p.frames, p.last))
        if current is not None and tape.row // batch != number:  # its last row is full: hand it on now
            yield current.finish(chunk, context)
            current = None
    if current is not None and current.pieces:
        yield current.finish(chunk, context)


def _utterances(items: Iterable[tuple[Hashable, np.ndarray] | NewRow], tape: Tape
                ) -> Iterator[tuple[Hashable, np.ndarray]]:  # fmt: skip
    for item in items:
        if isinstance(item, NewRow):
            tape.new_row()
        else:
            yield item


def pack_plan(items: Iterable[tuple[Hashable, np.ndarray] | NewRow], plan: ChunkPlan) -> Iterator[PackedBatch]:
    """pack() with a ChunkPlan's parameters."""
    return pack(items, plan.chunk_frames, plan.context, plan.batch, plan.log_mel_floor, plan.gap)


@dataclass
class Stitched:
    """One finished utterance: audio [T * hop] float32, and the per-frame values fed along with the audio (the
    device's check values, batchvoc/roundtrip.py) summed over the utterance's frames, [K] (empty when none were
    fed). `error` is set, and audio empty, when a batch holding a piece of it failed."""

    index: int
    key: Hashable
    audio: np.ndarray
    sums: np.ndarray
    error: str | None = None


class Stitcher:
    """Reassembles utterances from batch output, in input order, as their last pieces arrive.

    It keeps views, not copies, of the audio it is fed: an utterance in one piece is a view of its batch's buffer,
    and the pieces of one cut across batches stay views until its last piece arrives. So a caller must not write
    into a buffer once fed (the device stream gives each batch buffers of its own)."""

    def __init__(self, hop: int):
        self.hop = hop
        self._index: int | None = None  # utterance in progress
        self._parts: list[np.ndarray] = []
        self._sums: np.ndarray | None = None
        self._error: str | None = None

    @property
    def pending(self) -> bool:
        """True while an utterance has pieces but not its last one."""
        return self._index is not None

    def feed(self, packed: PackedBatch, audio: np.ndarray | None, values: np.ndarray | None = None,
             error: str | None = None) -> list[Stitched]:  # fmt: skip
        """Take a batch's audio [B, L * hop] (None with `error`: the batch failed) and optional per-frame values
        [K, B, L]; return the utterances it finished, in input order. `audio` is kept (class doc); `values` is
        not (summed here).

        Raises ValueError when audio has the wrong length or pieces come out of order."""
        if audio is not None:
            audio = np.asarray(audio).reshape(audio.shape[0], -1)
            expected = packed.length * self.hop
            if audio.shape[1] != expected:
                raise ValueError(f"engine returned {audio.shape[1]} samples per row, expected {expected}")
        done = []
        for p in packed.pieces:
            if self._index is not None and p.index != self._index:
                raise ValueError(f"utterance {p.key!r} started before utterance #{self._index} finished")
            self._index = p.index
            self._error = self._error or error
            if p.row is not None and self._error is None:
                first = p.column * self.hop
                self._parts.append(audio[p.row, first : first + p.frames * self.hop])
                if values is not None:
                    sums = values[:, p.row, p.column : p.column + p.frames].sum(axis=1, dtype=np.float64)
                    self._sums = sums if self._sums is None else self._sums + sums
            if p.last:
                done.append(self._finish(p))
        return done

    def _finish(self, p: Piece) -> Stitched:
        if self._error is not None:
            audio = np.zeros(0, dtype=np.float32)
        else:
            parts = self._parts or [np.zeros(0, dtype=np.float32)]
            # an utterance in one piece is handed on as it lies in its batch's buffer: no copy
            audio = parts[0] if len(parts) == 1 else np.concatenate(parts)
            audio = audio.astype(np.float32, copy=False)
        sums = self._sums if self._sums is not None else np.zeros(0)
        out = Stitched(p.index, p.key, audio, sums, self._error)
        self._index, self._parts, self._sums, self._error = None, [], None, None
        return out
