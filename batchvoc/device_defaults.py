"""Batch and chunk defaults per device, where `engine.batch` / `engine.window` are left null.

A GPU wants many rows per forward (batch 16 of 1024-frame rows keeps an H100/H200 busy; see BENCHMARKS.md). A CPU
does not: it gains nothing from batching, and every unused row of a batch is silence it computes in full (2
cores, 52.6 s of speech: batch 16 took 137.7 s, batch 1 21.4 s). Long rows are slower per frame on a CPU too,
since a HiFi-GAN's last layers no longer fit in cache. Measured on this project's 2-core CI machine (pretrained
hifigan_v1_universal, eager fp32, one thread, CPU seconds per frame of a [B, 80, L] forward):

    B=1 L=256: 4.89 ms   B=1 L=512: 4.72 ms   B=1 L=1024: 7.85 ms   B=4 L=256: 7.41 ms   B=2 L=1024: 7.26 ms

so a CPU gets batch 1 and rows of 512 frames (context 2 x 13 frames is 5 % of a row).
"""

from __future__ import annotations

import torch

GPU_BATCH, GPU_ROW_LENGTH = 16, 1024
CPU_BATCH, CPU_ROW_LENGTH = 1, 512


def _is_cpu(device: str | torch.device) -> bool:
    return torch.device(device).type == "cpu"


def default_batch(device: str | torch.device) -> int:
    """Rows per forward for `device` when engine.batch is null."""
    return CPU_BATCH if _is_cpu(device) else GPU_BATCH


def default_row_length(device: str | torch.device) -> int:
    """Frames per engine row (chunk + 2 x context) for `device` when engine.window is null."""
    return CPU_ROW_LENGTH if _is_cpu(device) else GPU_ROW_LENGTH
