"""hostmem: with freed memory retained, a stream of multi-MB arrays stops faulting pages in (a real allocator
measured through the kernel's page-fault counter, in fresh processes so the setting cannot leak between tests)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.engines.kernels import ROOT

# Stitching-like churn: batches of 16 fresh 1.9 MB arrays (10 s at 48 kHz), the last 4 batches alive at a time.
CHURN = """
import collections, resource, sys
import numpy as np
if sys.argv[1] == "retain":
    from batchvoc.hostmem import retain_freed_memory
    assert retain_freed_memory()
source = np.ones((16, 480_000), dtype=np.float32)
alive = collections.deque(maxlen=4)
def batch():
    alive.append([source[row].copy() for row in range(16)])
for _ in range(8):  # warm up: the heap grows to its working size
    batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(16):
    batch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    script = textwrap.dedent(CHURN)
    out = subprocess.run([sys.executable, "-c", script, mode], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator (Linux)")
def test_retained_memory_is_reused_without_page_faults():
    pages_per_batch = 16 * 480_000 * 4 // 4096
    default, retained = _faults("default"), _faults("retain")
    assert retained < pages_per_batch, (default, retained)  # 16 batches: under one batch's worth of faults
    assert default > 2 * pages_per_batch, (default, retained)  # what the setting saves (glibc's defaults)
