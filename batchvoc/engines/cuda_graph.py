"""One static-shape engine call replayed from a CUDA graph: the host launches one graph instead of each kernel.

At batch 1 a vocoder's forward on an H200 is shorter than the host's launches of its ~165 kernels, so the GPU
waits on the host: the inductor engine takes CUDA graphs there ("reduce-overhead", engines/inductor.default_mode),
and an AOTInductor package, which launches its kernels from C++ but one by one, ran gsv_v4 fp16 at 0.967 of it
(H200, batch 1, BENCHMARKS.md session 39). torch's recipe (torch.cuda.graphs, "whole-network capture"): warm up on
a side stream, capture one call into a private memory pool, then per call copy the inputs into the captured
input tensors, replay, and copy the output out of the pool before the next replay overwrites it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from torch import Tensor

# Engines of at most this many rows per batch on a CUDA GPU default to CUDA graphs: there a forward is shorter than
# the host's launches of its ~165 kernels. H200, fp16, batch 1, 10 s rows (BENCHMARKS.md session 27): gsv_v4 783x ->
# 3,485x, BigVGAN v2 24k 388x -> 960x; gsv_v4 batch 4 2,296x -> 4,030x, batch 8 3,187x -> 4,078x; at batch 16 the
# GPU's 36 ms forward hides the launches (+0.25% with graphs, session 21).
CUDA_GRAPH_MAX_BATCH = 8

WARMUP_CALLS = 3  # torch's recipe warms up on a side stream before capturing (lazy initialisation, cuBLAS/cuDNN)


def graphs_pay(device: torch.device | str, shapes: list[tuple[int, int]]) -> bool:
    """Whether an engine of these [(B, T), ...] shapes on device should replay CUDA graphs when not told: on a
    CUDA GPU where no batch passes CUDA_GRAPH_MAX_BATCH rows."""
    small = max(batch for batch, _ in shapes) <= CUDA_GRAPH_MAX_BATCH
    return torch.device(device).type == "cuda" and small


class GraphedCall:
    """`call(mel, valid) -> audio` of `fn` for one static shape, replayed from a CUDA graph.

    fn: a function of (mel [B, n_mels, T], valid [B, 2, T]) -> audio [B, T * hop] whose kernels may be captured
    (no host synchronisation, no allocation outside torch's caching allocator). mel, valid: example inputs of
    the shape, dtype and device every later call brings. Each call copies its inputs into the captured ones,
    replays and returns a copy of the captured output (a tensor of its own). Calls from several threads or
    streams are taken in turn: each waits on the stream for the previous replay's copy out. Raises what
    torch.cuda.graph raises for a function that cannot be captured."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], mel: Tensor, valid: Tensor) -> None:
        device = mel.device
        self.mel, self.valid = mel.clone(), valid.clone()
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(WARMUP_CALLS):
                fn(self.mel, self.valid)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.audio = fn(self.mel, self.valid)
        torch.cuda.synchronize(device)
        self.done = torch.cuda.Event()
        self.done.record(torch.cuda.current_stream(device))
        self.lock = threading.Lock()

    def __call__(self, mel: Tensor, valid: Tensor) -> Tensor:
        with self.lock:
            stream = torch.cuda.current_stream(self.mel.device)
            stream.wait_event(self.done)  # another stream's replay and copy out come first
            self.mel.copy_(mel, non_blocking=True)
            self.valid.copy_(valid, non_blocking=True)
            self.graph.replay()
            audio = self.audio.clone()
            self.done.record(stream)
            return audio
