"""16-bit PCM WAV files in memory, byte for byte as libsndfile (python-soundfile) writes them, in numpy.

libsndfile encodes into memory through Python callbacks, one per 8 KB it writes: each must take the GIL back, so
the writer threads queued behind the other stages' Python work (about 5 ms per 10 s of 48 kHz audio on a loaded
host, most of it waiting). Here the samples are converted with numpy (which releases the GIL) and the chunks
around them are packed with struct. The layout is what libsndfile 1.2 writes for a mono PCM_16 file whose
comment was set before the first sample:

    RIFF <size> WAVE | fmt  <16> PCM, 1 channel, rate, rate * 2, 2, 16 | LIST <size> INFO ICMT <size> comment,
    NUL, padded to even | data <2 n> samples

Samples: libsndfile (with clipping on, as soundfile sets it) scales a float x by 2**31, rounds to the nearest
integer (ties to even: lrintf), takes the top 16 bits (an arithmetic shift, so the floor of / 2**16), and
saturates at full scale. In float32 every step of that is exact, so numpy gives the same codes.
`same_as_libsndfile()` checks both once per process on values where the rounding is closest; where they differ
(another libsndfile build) the caller keeps libsndfile.
"""

from __future__ import annotations

import io
import struct
from functools import lru_cache

import numpy as np

MAX_COMMENT_BYTES = 2000  # longer comments are left to libsndfile (it drops strings past about 2 KB)
_TOP = np.float32(2.0**31)
_SHIFT = np.float32(2.0**-16)


def pcm16(audio: np.ndarray) -> np.ndarray:
    """audio [n] float32 -> int16 [n], the codes libsndfile writes (module doc); finite values only."""
    with np.errstate(over="ignore"):  # past 2**97: inf, which saturates as libsndfile does
        scaled = np.multiply(audio, _TOP, dtype=np.float32)
    np.rint(scaled, out=scaled)
    np.multiply(scaled, _SHIFT, out=scaled)
    np.floor(scaled, out=scaled)
    np.clip(scaled, -32768.0, 32767.0, out=scaled)
    return scaled.astype(np.int16)


def wav_pcm16(audio: np.ndarray, sample_rate: int, comment: str) -> bytes:
    """The bytes of a mono 16-bit WAV file of audio [n >= 1] float32 (finite) at `sample_rate` Hz with `comment`
    (non-empty, at most MAX_COMMENT_BYTES of UTF-8) in its INFO ICMT chunk."""
    text = comment.encode()
    padded = text + b"\x00" * (2 - len(text) % 2)  # NUL-terminated, even length
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(padded)) + padded
    samples = pcm16(audio).astype("<i2", copy=False)
    data_size = samples.size * 2
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    riff_size = 4 + (8 + len(fmt)) + (8 + len(info)) + (8 + data_size)
    head = b"".join((b"RIFF", struct.pack("<I", riff_size), b"WAVE", b"fmt ", struct.pack("<I", len(fmt)), fmt,
                     b"LIST", struct.pack("<I", len(info)), info, b"data", struct.pack("<I", data_size)))  # fmt: skip
    return b"".join((head, samples))


def fits(audio: np.ndarray, comment: str) -> bool:
    """Whether wav_pcm16 writes this file: mono samples, at least one (libsndfile's RIFF size of an empty file
    leaves its LIST chunk out), a comment it lays out as libsndfile does, under 4 GB."""
    size = len(comment.encode())
    return audio.ndim == 1 and 0 < audio.size < (1 << 31) - 4096 and 0 < size <= MAX_COMMENT_BYTES


@lru_cache(maxsize=1)
def same_as_libsndfile() -> bool:
    """Whether wav_pcm16 gives libsndfile's bytes here: one file of values around every rounding edge."""
    import soundfile as sf

    steps = np.arange(-(1 << 16), (1 << 16) + 1, dtype=np.float64) / (1 << 16)  # halfway points of 1/32768 steps
    near = np.concatenate([steps, np.linspace(-(2.0**-8), 2.0**-8, 4097)]).astype(np.float32)
    edges = np.float32([-1.5, -1.0, -0.0, 0.0, 1.0, 1.5, 32767 / 32768, -32767 / 32768, 2.0**-31, -(2.0**-31)])
    values = np.concatenate([near, np.nextafter(near, np.float32(2)), np.nextafter(near, np.float32(-2)), edges])
    audio = np.clip(values, -1.0, 1.0).astype(np.float32)
    for comment, rate in (('{"a": 1}', 48000), ('{"ab": "\u00e9"}', 22050)):
        buffer = io.BytesIO()
        with sf.SoundFile(buffer, "w", rate, 1, "PCM_16", format="WAV") as out:
            out.comment = comment
            out.write(audio)
        if buffer.getvalue() != wav_pcm16(audio, rate, comment):
            return False
    return True
