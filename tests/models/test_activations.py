"""Snake / SnakeBeta and the anti-aliased Activation1d: upstream's formulas, half-precision safety, exact edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from batchvoc.models.activations import Snake, SnakeBeta
from batchvoc.models.antialias import Activation1d, DownSample1d, UpSample1d, kaiser_sinc_filter1d
from batchvoc.models.span import Span

pytestmark = pytest.mark.usefixtures("one_thread")


def _reference_kaiser_sinc(cutoff: float, half_width: float, kernel_size: int) -> np.ndarray:
    """julius / NVIDIA's design, written out in float64 numpy: Kaiser window from the transition width."""
    half = kernel_size // 2
    a = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if a > 50:
        beta = 0.1102 * (a - 8.7)
    elif a >= 21:
        beta = 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    else:
        beta = 0.0
    window = np.kaiser(kernel_size, beta)
    if kernel_size % 2 == 0:
        t = np.arange(-half, half) + 0.5
    else:
        t = np.arange(kernel_size) - half
    taps = 2 * cutoff * window * np.sinc(2 * cutoff * t)
    return taps / taps.sum()


@pytest.mark.parametrize(
    ("cutoff", "half_width", "kernel_size"),
    [(0.25, 0.3, 12), (0.125, 0.15, 24), (0.2, 0.05, 13), (0.4, 0.6, 7)],  # A > 50, A > 50, 21 <= A <= 50, A < 21
)
def test_kaiser_sinc_filter_matches_the_formula(cutoff, half_width, kernel_size):
    taps = kaiser_sinc_filter1d(cutoff, half_width, kernel_size)
    assert taps.shape == (1, 1, kernel_size)
    assert taps.dtype == torch.float32
    flat = taps.flatten().double()
    assert flat.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(flat, flat.flip(0), atol=1e-7)  # linear phase
    np.testing.assert_allclose(flat.numpy(), _reference_kaiser_sinc(cutoff, half_width, kernel_size), atol=2e-7)


def test_bigvgan_filters_are_half_band_lowpasses():
    """The 2x filters BigVGAN uses (K=12, cutoff 0.25, half width 0.3): pass the band, stop above Nyquist/2."""
    taps = kaiser_sinc_filter1d(0.25, 0.3, 12).flatten().double().numpy()
    freqs = np.linspace(0, 0.5, 501)
    response = np.abs(np.exp(-2j * np.pi * np.outer(freqs, np.arange(12))) @ taps)
    assert response[0] == pytest.approx(1.0, abs=1e-6)
    assert np.all(response[freqs <= 0.1] > 0.9)
    assert np.all(response[freqs >= 0.4] < 0.05)
    assert np.all(response < 1.01)  # no gain anywhere (tiny pass-band ripple only)
    assert response[-1] < 1e-9  # an even symmetric FIR has a zero at Nyquist


def test_up_and_down_sampling_preserve_a_band_limited_signal():
    n = 256
    t = torch.arange(n, dtype=torch.float32)
    x = (torch.sin(2 * math.pi * 0.03 * t) + 0.5 * torch.cos(2 * math.pi * 0.07 * t + 0.3)).view(1, 1, n)
    up = UpSample1d(2, 12)(x)
    assert up.shape == (1, 1, 2 * n)
    # an even-length filter is centred between taps: upsampled sample j sits at input time j/2 - 1/4
    t2 = torch.arange(2 * n, dtype=torch.float32) / 2 - 0.25
    expected = torch.sin(2 * math.pi * 0.03 * t2) + 0.5 * torch.cos(2 * math.pi * 0.07 * t2 + 0.3)
    inner = slice(24, 2 * n - 24)
    assert (up[0, 0, inner] - expected[inner]).abs().max() < 0.01
    down = DownSample1d(2, 12)(up)
    assert down.shape == (1, 1, n)
    assert (down[0, 0, 12:-12] - x[0, 0, 12:-12]).abs().max() < 0.01  # and back on the input grid


def test_state_dict_names_are_upstreams():
    act = Activation1d(SnakeBeta(4, alpha_logscale=True))
    assert set(act.state_dict()) == {"act.alpha", "act.beta", "upsample.filter", "downsample.lowpass.filter"}
    assert act.state_dict()["upsample.filter"].shape == (1, 1, 12)
    assert set(Activation1d(Snake(4)).state_dict()) == {"act.alpha", "upsample.filter", "downsample.lowpass.filter"}


@pytest.mark.parametrize("logscale", [False, True])
def test_snake_and_snakebeta_formulas(logscale):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 50) * 3
    snake, snakebeta = Snake(3, alpha_logscale=logscale), SnakeBeta(3, alpha_logscale=logscale)
    with torch.no_grad():
        for p in (snake.alpha, snakebeta.alpha, snakebeta.beta):
            p.copy_(torch.tensor([0.3, -0.5, 1.2]) if logscale else torch.tensor([0.4, 1.0, 2.5]))
    xd = x.double().numpy()

    def value(p):
        v = p.detach().double().numpy()[None, :, None]
        return np.exp(v) if logscale else v

    a = value(snake.alpha)
    np.testing.assert_allclose(
        snake(x).detach().numpy(), xd + 1 / (a + 1e-9) * np.sin(a * xd) ** 2, rtol=1e-5, atol=1e-5
    )
    a, b = value(snakebeta.alpha), value(snakebeta.beta)
    np.testing.assert_allclose(
        snakebeta(x).detach().numpy(), xd + 1 / (b + 1e-9) * np.sin(a * xd) ** 2, rtol=1e-5, atol=1e-5
    )


def _naive_snakebeta(x, log_alpha, log_beta):
    """Upstream's arithmetic in the input's own dtype (what model.half() runs upstream)."""
    alpha, beta = torch.exp(log_alpha).view(1, -1, 1), torch.exp(log_beta).view(1, -1, 1)
    return x + (1.0 / (beta + 1e-9)) * torch.pow(torch.sin(x * alpha), 2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_snakebeta_with_tiny_beta_stays_finite_in_half_precision(dtype):
    act = SnakeBeta(4, alpha_logscale=True)
    with torch.no_grad():
        act.beta.fill_(math.log(1e-6))  # 1 / beta = 1e6: past fp16's 65504
    torch.manual_seed(0)
    x = torch.randn(1, 4, 64) * 1e-3  # small inputs: sin^2 ~ 1e-6, so the true output is small
    reference = act(x.to(dtype).float()).double()  # fp32 model on the same (rounded) input
    act.to(dtype)
    assert act.beta.dtype == dtype  # the cast model really holds half-precision parameters
    y = act(x.to(dtype))
    assert y.dtype == dtype
    assert torch.isfinite(y).all()
    tol = 1e-2 if dtype == torch.float16 else 4e-2
    assert torch.allclose(y.double(), reference, rtol=tol, atol=1e-4)
    if dtype == torch.float16:  # the trap this guards against: upstream's arithmetic in fp16 overflows
        naive = _naive_snakebeta(x.to(dtype), act.alpha.detach(), act.beta.detach())
        assert not torch.isfinite(naive).all()


def test_activation1d_span_recreates_replicate_padding_at_both_rates():
    """A signal inside a longer window, with garbage around it, gives the whole-signal output on its samples."""
    torch.manual_seed(0)
    act = Activation1d(SnakeBeta(3, alpha_logscale=True))
    with torch.no_grad():
        act.act.alpha.normal_(0, 0.5)
        act.act.beta.normal_(0, 0.5)
    n, before, after = 40, 9, 7
    x = torch.randn(1, 3, n)
    whole = act(x)
    window = torch.cat([torch.full((1, 3, before), 5.0), x, torch.full((1, 3, after), -5.0)], dim=-1)
    valid = torch.tensor([[before, before + n]])
    for rate in (1, 4):  # `rate` samples per frame: the span is scaled by it
        w = window.repeat_interleave(rate, dim=-1) if rate > 1 else window
        xx = x.repeat_interleave(rate, dim=-1) if rate > 1 else x
        out = act(w, Span(valid), rate)
        expected = act(xx) if rate > 1 else whole
        got = out[..., before * rate : (before + n) * rate]
        assert (got - expected).abs().max() < 1e-5
    unmasked = act(window)[..., before : before + n]
    assert (unmasked - whole).abs().max() > 1e-2  # without the span the edges differ: the check can fail
