"""Keep freed host memory in the process for reuse, instead of handing it back to the kernel after every utterance.

Each stitched utterance is a fresh array of a few MB (gsv_v4: 10 s at 48 kHz, float32, 1.9 MB), and so is each
copy the sink makes to write it. glibc serves blocks that large from fresh mappings or trims them off the heap once
freed, so every new array is faulted in page by page: stitching a batch of 16 such utterances took 19.8 ms of the
GPU-feeding loop's 49.4 ms per batch on an H100 host (BENCHMARKS.md, session 4), about 8 ms of it in page faults
here. Raising glibc's mmap and trim thresholds keeps those blocks on the heap, so the next batch reuses them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 64 << 20  # blocks below this come from the heap (a 10-minute 48 kHz utterance is 115 MB)
TRIM_THRESHOLD = 1 << 30  # free heap kept before any is returned to the kernel

_done = False


def retain_freed_memory() -> bool:
    """Set glibc's thresholds (once per process); False where the C library is not glibc (nothing changes)."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.debug("no glibc mallopt here: freed host memory is managed by the C library's defaults")
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
