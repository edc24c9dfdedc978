"""Batch and chunk defaults per device, where `engine.batch` / `engine.window` are left null.

A GPU wants many rows per forward (batch 16 of 10 s rows keeps an H100/H200 busy; see BENCHMARKS.md). A CPU
does not: it gains nothing from batching, and every unused row of a batch is silence it computes in full (2
cores, 52.6 s of speech: batch 16 took 137.7 s, batch 1 21.4 s). Long rows are slower per frame on a CPU too,
since a HiFi-GAN's last layers no longer fit in cache. Measured on this project's 2-core CI machine (pretrained
hifigan_v1_universal, eager fp32, one thread, CPU seconds per frame of a [B, 80, L] forward):

    B=1 L=256: 4.89 ms   B=1 L=512: 4.72 ms   B=1 L=1024: 7.85 ms   B=4 L=256: 7.41 ms   B=2 L=1024: 7.26 ms

so a CPU gets batch 1 and rows of 512 frames (context 2 x 13 frames is 5 % of a row).

A GPU row holds `GPU_ROW_SECONDS` of frames at the model's frame rate (sample_rate / hop), rounded up to
chunking.ROW_MULTIPLE: gsv_v4 1,000 frames, BigVGAN v2 24k 944, HiFi-GAN 22k 864. An utterance vocoded whole in
its row needs no context (each layer pads at its own edges, models/span.py), so a 10 s utterance fills such a row
with no floor frames, where rows of 1,024 frames computed 24 (gsv_v4) or 86 (BigVGAN, 938 frames) frames of
log-mel floor for each one: H200, gsv_v4 fp16 batch 16, 256 x 10 s, 4,507x in rows of 1,000 frames against
4,411x in rows of 1,024, one machine (BENCHMARKS.md, session 29). Shorter utterances share rows and longer ones
are cut (chunking.py) as before; per frame the engine runs at the same speed.
"""

from __future__ import annotations

import math

import torch

GPU_BATCH, GPU_ROW_SECONDS = 16, 10.0
CPU_BATCH, CPU_ROW_LENGTH = 1, 512


def _is_cpu(device: str | torch.device) -> bool:
    return torch.device(device).type == "cpu"


def default_batch(device: str | torch.device) -> int:
    """Rows per forward for `device` when engine.batch is null."""
    return CPU_BATCH if _is_cpu(device) else GPU_BATCH


def default_row_length(device: str | torch.device, frame_rate: float) -> int:
    """Frames per engine row (chunk + 2 x context, before chunking.ROW_MULTIPLE's rounding) on `device` when
    engine.window is null, for a model of `frame_rate` mel frames per second (sample_rate / hop). Raises
    ValueError for a frame rate that is not positive."""
    if not frame_rate > 0:
        raise ValueError(f"bad frame rate {frame_rate!r}: mel frames per second must be positive")
    return CPU_ROW_LENGTH if _is_cpu(device) else math.ceil(GPU_ROW_SECONDS * frame_rate)
