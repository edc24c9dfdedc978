"""The fused anti-aliased Snake (engines/fused_antialias.py) against the reference Activation1d: the torch index path
on the CPU, the Triton kernels through Triton's interpreter (CPU) and on a GPU, inside torch.compile, and finite
in half precision with tiny beta."""

from __future__ import annotations

import pytest
import torch

from batchvoc.engines import layout
from batchvoc.engines.fused_antialias import FusedActivation1d, antialiased_snake
from batchvoc.models.activations import Snake, SnakeBeta
from batchvoc.models.antialias import Activation1d
from batchvoc.models.span import Span
from tests.engines.kernels import CHANNELS, FRAMES, RATE, ROWS, check_compiles, layouts, run_interpreted, spans


def _activation(kind: type, seed: int = 0, log_beta: float | None = None) -> Activation1d:
    act = kind(CHANNELS, alpha_logscale=True)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        act.alpha.copy_(0.5 * torch.randn(CHANNELS, generator=gen))
        if hasattr(act, "beta"):
            act.beta.copy_(0.5 * torch.randn(CHANNELS, generator=gen) if log_beta is None else log_beta)
    return Activation1d(act).eval()


def _check(fused: torch.nn.Module, ref: Activation1d, device: str = "cpu", dtype=torch.float32, tol=1e-5) -> None:
    x = torch.randn(ROWS, CHANNELS, FRAMES * RATE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for valid in spans():
            want = ref(x, Span(valid), RATE)
            span = Span(None if valid is None else valid.to(device))
            for inp in layouts(x):
                got = fused(inp.to(device=device, dtype=dtype), span, RATE)
                assert got.shape == want.shape and got.stride() == inp.stride()
                assert (got.float().cpu() - want).abs().max() <= tol * max(1.0, want.abs().max())


@pytest.mark.parametrize("kind", [Snake, SnakeBeta])
def test_torch_path_equals_reference(kind):
    ref = _activation(kind)
    _check(FusedActivation1d(ref), ref)


def test_cast_keeps_filter_taps_float32():
    fused = FusedActivation1d(_activation(SnakeBeta)).to(torch.bfloat16)
    assert fused.up_taps.dtype == fused.down_taps.dtype == torch.float32
    assert fused.act.alpha.dtype == torch.bfloat16


def test_refuses_what_it_does_not_compute():
    with pytest.raises(ValueError, match="ratio 2"):
        FusedActivation1d(Activation1d(Snake(4), up_ratio=4, up_kernel_size=24))


def test_triton_kernels_equal_reference_in_the_interpreter():
    run_interpreted(
        """
        from batchvoc.engines import fused_antialias as fa
        from tests.engines.test_fused_antialias import _activation, _check
        from batchvoc.models.activations import Snake, SnakeBeta
        for kind in (Snake, SnakeBeta):
            ref = _activation(kind)
            _check(fa.FusedActivation1d(ref), ref)
        """
    )


def test_op_compiles_without_graph_break():
    ref = _activation(SnakeBeta)
    check_compiles(FusedActivation1d(ref), lambda x, v: ref(x, Span(v), RATE))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_tiny_beta_stays_finite(dtype):
    """beta = 1e-4 (log-scale parameter log(1e-4)): 1/beta is 1e4, fine in float32, where the math runs."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fused = FusedActivation1d(_activation(SnakeBeta, log_beta=float(torch.log(torch.tensor(1e-4))))).to(device)
    x = 3 * torch.randn(ROWS, CHANNELS, FRAMES * RATE, device=device, dtype=dtype)
    y = fused(x, Span(spans()[2].to(device)), RATE)
    assert y.dtype == dtype and torch.isfinite(y).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", [Snake, SnakeBeta])
def test_triton_on_gpu_equals_reference(kind):
    pytest.importorskip("triton")
    ref = _activation(kind)
    _check(FusedActivation1d(ref).cuda(), ref, "cuda")
    _check(FusedActivation1d(ref).cuda().half(), ref, "cuda", torch.float16, tol=1e-2)


def test_layout_swaps_every_activation():
    from batchvoc.models.bigvgan import BigVGAN

    model = BigVGAN(n_mels=8, upsample_rates=[2], upsample_kernel_sizes=[4], upsample_initial_channel=8,
                    resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3, 5]])  # fmt: skip
    fused = layout.apply(model, layout.Rewrites(antialias="fused"))
    assert not any(type(m) is Activation1d for m in fused.modules())
    assert sum(isinstance(m, FusedActivation1d) for m in fused.modules()) == sum(
        type(m) is Activation1d for m in model.modules()
    )
    assert antialiased_snake is not None
