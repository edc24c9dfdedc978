"""Span (models/span.py) inside Triton kernels: the utterance bounds each sample position belongs to.

Imported only where the kernels run (a CUDA GPU, or Triton's interpreter), so batchvoc imports without triton.
"""

import triton
import triton.language as tl


@triton.jit
def utterance_bounds(pos, row_valid_ptr, svk, svf, rate):
    """(start, end) in samples of the utterance each sample position (0 <= pos < T) belongs to, at `rate` samples
    per frame, from one row's per-frame bounds: start at row_valid_ptr + frame * svf, end svk further."""
    frame = pos // rate
    lo = tl.load(row_valid_ptr + frame * svf).to(tl.int32) * rate
    hi = tl.load(row_valid_ptr + svk + frame * svf).to(tl.int32) * rate
    return lo, hi
