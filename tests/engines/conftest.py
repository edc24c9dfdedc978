"""A tiny real HiFi-GAN (hop 16, 32 channels) and its preset, for engine tests that must run in seconds on a CPU."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from batchvoc.models.hifigan import HiFiGAN
from batchvoc.models.presets import get_preset

TINY = dict(
    n_mels=80,
    resblock="1",
    upsample_rates=[4, 4],
    upsample_kernel_sizes=[8, 8],
    upsample_initial_channel=32,
    resblock_kernel_sizes=[3, 5],
    resblock_dilation_sizes=[[1, 3], [1, 3]],
)


def tiny_model():
    """(model, preset): the HiFi-GAN architecture at toy size, unit-gain random weights, fp32, eval."""
    preset = dataclasses.replace(get_preset("hifigan_v1_universal"), name="tiny", hparams=TINY, hop_length=16)
    with torch.random.fork_rng(devices=[]):  # the same biases in every process (package keys hash them)
        torch.manual_seed(0)
        model = HiFiGAN(**TINY)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                fan_in = m.weight.shape[1 if isinstance(m, torch.nn.Conv1d) else 0] * m.weight.shape[2]
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / math.sqrt(fan_in))
    return model.eval().requires_grad_(False), preset


@pytest.fixture(scope="session")
def tiny():
    """tiny_model(), once per session."""
    return tiny_model()


@pytest.fixture
def batch():
    """mel [2, 80, 64] float32 and valid spans [[3, 64], [0, 40]]."""
    gen = torch.Generator().manual_seed(1)
    return 2 * torch.randn(2, 80, 64, generator=gen) - 5, torch.tensor([[3, 64], [0, 40]])


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def snr_db(test: torch.Tensor, ref: torch.Tensor) -> float:
    return float(20 * torch.log10(ref.double().norm() / (test.double() - ref.double()).norm()))
