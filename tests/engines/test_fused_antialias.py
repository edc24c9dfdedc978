"""The fused anti-aliased Snake (engines/fused_antialias.py) against the reference Activation1d: the torch index path
on the CPU, the Triton kernels (two-pass, and both one-pass methods) through Triton's interpreter (CPU) and on a GPU,
inside torch.compile, and finite in half precision with tiny beta."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from batchvoc.engines import layout
from batchvoc.engines.fused_antialias import METHODS, FusedActivation1d, antialiased_snake
from batchvoc.models.activations import Snake, SnakeBeta
from batchvoc.models.antialias import Activation1d
from batchvoc.models.span import Span
from tests.engines.kernels import CHANNELS, FRAMES, RATE, ROOT, ROWS, check_compiles, layouts, run_interpreted, spans


def _activation(kind: type, seed: int = 0, log_beta: float | None = None, channels: int = CHANNELS) -> Activation1d:
    act = kind(channels, alpha_logscale=True)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        act.alpha.copy_(0.5 * torch.randn(channels, generator=gen))
        if hasattr(act, "beta"):
            act.beta.copy_(0.5 * torch.randn(channels, generator=gen) if log_beta is None else log_beta)
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
@pytest.mark.parametrize("method", ["two_pass", *METHODS])
def test_torch_path_equals_reference(kind, method):
    ref = _activation(kind)
    _check(FusedActivation1d(ref, method), ref)


def _packed_spans(rows: int, frames: int) -> list[torch.Tensor | None]:
    """No span, and per-frame spans [rows, 2, frames]: row 0 whole, row 1 two utterances with a gap and padding on
    both sides, the others one inner utterance."""
    valid = torch.tensor([2, frames - 3]).view(1, 2, 1).repeat(rows, 1, frames)
    valid[0] = torch.tensor([0, frames]).view(2, 1)
    cut = frames // 2
    valid[1, :, :cut] = torch.tensor([1, cut - 1]).view(2, 1)
    valid[1, :, cut:] = torch.tensor([cut + 1, frames - 1]).view(2, 1)
    return [None, valid]


def one_pass_parity(dtype: torch.dtype, channels: int, frames: int, rate: int, tiles: dict) -> None:
    """Under TRITON_INTERPRET=1: each one-pass method (with tiles[method]) against the plain-torch path (fp32 to
    1e-6, half precision to one unit of its storage precision) and against the two-pass kernels: bit for bit (same
    arithmetic in the same order), "dot" (another order) as close as to the torch path; on x of `dtype`, with and
    without packed spans; contiguous and channels-last in fp32, channels-last (the engines' layout) in half."""
    from batchvoc.engines import fused_antialias as fa

    rows = 3
    ref = FusedActivation1d(_activation(SnakeBeta, seed=channels, channels=channels))
    alpha, inv = ref.act.params_fp32()
    x = 2 * torch.randn(rows, channels, frames * rate, generator=torch.Generator().manual_seed(frames))
    tol = {torch.float32: 1e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    inputs = layouts(x.to(dtype))[0 if dtype == torch.float32 else 1 :]
    for valid in _packed_spans(rows, frames):
        valid = Span(valid).per_frame(frames, "cpu")
        for inp in inputs:
            args = (inp, alpha, inv, valid, rate, ref.up_taps, ref.up_first, ref.down_taps, ref.down_left)
            want, two = fa._torch_forward(*args).float(), fa.antialiased_snake(*args)
            for method in METHODS:
                got = fa._one_pass_triton(*args, method, tiles[method])
                assert got.dtype == dtype and got.stride() == inp.stride()
                scale = tol * max(1.0, want.abs().max())
                assert (got.float() - want).abs().max() <= scale, (method, dtype)
                if method == "dot":
                    assert (got.float() - two.float()).abs().max() <= scale, (method, dtype)
                else:
                    assert torch.equal(got, two), (method, dtype, valid.numel())


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


def test_one_pass_module_equals_reference_in_the_interpreter():
    """FusedActivation1d(method="gather" | "dot") with the table's tiles against Activation1d itself (kernels.spans():
    none, per row, per frame), fp32, both layouts."""
    run_interpreted(
        """
        from batchvoc.engines import fused_antialias as fa
        from tests.engines.test_fused_antialias import _activation, _check
        from batchvoc.models.activations import SnakeBeta
        ref = _activation(SnakeBeta)
        for method in ("gather", "dot"):
            _check(fa.FusedActivation1d(ref, method), ref)
        """
    )


def test_one_pass_equals_torch_path_and_two_pass_in_the_interpreter():
    """fp32, fp16, bf16; odd channel count (13: not a multiple of the channel block), odd length (13 frames x 3),
    small tiles (several per row, the last one partial; two channel blocks for gather)."""
    run_interpreted(
        """
        from batchvoc.engines.fused_antialias import Tile
        from tests.engines.test_fused_antialias import one_pass_parity
        tiles = dict(recompute=Tile(16, 16, 4), gather=Tile(32, 8, 4), dot=Tile(32, 16, 4))
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            one_pass_parity(dtype, 13, 13, 3, tiles)
        """
    )


def pairs_parity(dtype: torch.dtype, channels: int, frames: int, rate: int, device: str = "cpu", pairs=None) -> None:
    """Under TRITON_INTERPRET=1 (or on a GPU): the two-pass kernels "pairs" (by default small tiles: interior tiles
    and edge tiles, several channel blocks) bit for bit against "v1", and against the plain-torch path; packed spans
    and none, both layouts."""
    from batchvoc.engines import fused_antialias as fa

    rows = 3
    ref = FusedActivation1d(_activation(SnakeBeta, seed=channels, channels=channels))
    x = 2 * torch.randn(rows, channels, frames * rate, generator=torch.Generator().manual_seed(frames))
    tol = {torch.float32: 1e-6 if device == "cpu" else 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    pairs = pairs or fa.TwoPass("pairs", fa.Tile(8, 16, 4), fa.Tile(16, 16, 2))
    v1 = fa.TwoPass("v1", fa.Tile(32, 64, 4), fa.Tile(32, 64, 4))
    ref = ref.to(device)
    alpha, inv = ref.act.params_fp32()
    for valid in _packed_spans(rows, frames):
        valid = Span(valid).per_frame(frames, device)
        for inp in layouts(x.to(device, dtype)):
            args = (inp, alpha, inv, valid, rate, ref.up_taps, ref.up_first, ref.down_taps, ref.down_left)
            got, want = fa._triton_forward(*args, tiles=pairs), fa._torch_forward(*args).float()
            assert got.dtype == dtype and got.stride() == inp.stride()
            assert torch.equal(got, fa._triton_forward(*args, tiles=v1)), (dtype, channels, valid.numel(), inp.stride())
            assert (got.float() - want).abs().max() <= tol * max(1.0, want.abs().max())


def test_two_pass_pairs_equal_v1_in_the_interpreter():
    """fp32, fp16, bf16 on 24 channels (16-byte aligned channels-last rows: ALIGN 8) and 13 (odd: ALIGN 1, two
    channel blocks), 30 frames x 4 and 13 x 3; and with `divide` (channel blocks of 8 for 24, the grid channels
    first; 13: no power of two from 8 divides it, the usual block)."""
    run_interpreted(
        """
        from tests.engines.test_fused_antialias import pairs_parity
        from batchvoc.engines.fused_antialias import Tile, TwoPass
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            pairs_parity(dtype, 24, 30, 4)
        pairs_parity(torch.float16, 13, 13, 3)
        divide = TwoPass("pairs", Tile(8, 16, 4), Tile(16, 16, 2), True)  # 3 channel blocks of 8, channels first
        pairs_parity(torch.float16, 24, 30, 4, pairs=divide)
        pairs_parity(torch.float16, 13, 13, 3, pairs=divide)
        """
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_two_pass_pairs_on_gpu_equal_v1(dtype):
    """On the GPU with the sweep's first pairs tiles: BigVGAN-like widths (768 x 4 samples per frame, 24 x 16)."""
    pytest.importorskip("triton")
    from batchvoc.engines.fused_antialias import Tile, TwoPass

    pairs = TwoPass("pairs", Tile(16, 64, 4), Tile(32, 64, 4))
    pairs_parity(dtype, 768, 40, 4, "cuda", pairs)
    pairs_parity(dtype, 24, 40, 16, "cuda", pairs)


def random_spans_stay_in_the_row() -> None:
    """Under TRITON_INTERPRET=1: per-frame bounds of any values (random int64, as AOT compilers feed kernels while
    tuning) never move a read outside the row: the interpreter reads host memory at the computed addresses, so a
    far one crashes it. Every anti-alias kernel, both layouts."""
    from batchvoc.engines import fused_antialias as fa

    rows, channels, frames, rate = 2, 24, 12, 4
    ref = FusedActivation1d(_activation(SnakeBeta, channels=channels))
    alpha, inv = ref.act.params_fp32()
    valid = torch.randint(-(2**62), 2**62, (rows, 2, frames), generator=torch.Generator().manual_seed(0))
    v1 = fa.TwoPass("v1", fa.Tile(32, 64, 4), fa.Tile(32, 64, 4))
    for inp in layouts(torch.randn(rows, channels, frames * rate)):
        args = (inp, alpha, inv, valid, rate, ref.up_taps, ref.up_first, ref.down_taps, ref.down_left)
        outs = [fa._triton_forward(*args), fa._triton_forward(*args, tiles=v1)]
        outs += [fa._one_pass_triton(*args, m, fa.Tile(32, 16, 4)) for m in ("gather", "dot", "recompute")]
        assert all(torch.isfinite(y).all() for y in outs)


def test_random_spans_stay_in_the_row_in_the_interpreter():
    run_interpreted(
        """
        from tests.engines.test_fused_antialias import random_spans_stay_in_the_row
        random_spans_stay_in_the_row()
        """
    )


def test_alignment_of_channels_last_rows():
    from batchvoc.engines import fused_antialias as fa
    from batchvoc.engines.fused_antialias import Tile, _alignment

    for channels, want in ((24, 8), (12, 4), (13, 1), (768, 8)):  # and the divide option's channel blocks
        assert fa._two_pass_block(torch.zeros(1, 4, channels).transpose(1, 2), Tile(32, 64, 4), True)[1] == {
            24: 8, 12: 16, 13: 16, 768: 64}[channels]  # fmt: skip
        x = torch.zeros(2, 5, channels).transpose(1, 2)
        assert _alignment(x, torch.zeros(2, 10, channels).transpose(1, 2)) == want
    assert _alignment(torch.zeros(2, 24, 5)) == 1  # contiguous: time is the unit-stride dimension


def test_refuses_unknown_two_pass_kernels():
    from batchvoc.engines import fused_antialias as fa

    x = torch.zeros(1, 4, 8)
    args = (x, torch.ones(4), torch.zeros(4), torch.zeros(0, 2, 0, dtype=torch.int64), 1, torch.zeros(2, 6), [-3, -2])
    with pytest.raises(ValueError, match="two-pass kernels"):
        fa._triton_forward(*args, torch.zeros(12), 5, tiles=fa.TwoPass("v2", fa.Tile(8, 4, 4), fa.Tile(8, 4, 4)))


def test_table_tiles_compile_for_sm90_without_spills():
    """The two-pass tables' kernels and the pairs candidates the sweep starts from, compiled offline for sm_90
    (benchmarks/antialias_ptxas.py): no register spills, at most 128 registers (4+ blocks of 4 warps per SM)."""
    pytest.importorskip("triton")
    from batchvoc.engines.fused_antialias import TWO_PASS_TILES, Tile
    from benchmarks.antialias_ptxas import resources

    table = TWO_PASS_TILES[True]
    names = {"v1": ("up_snake", "down"), "pairs": ("up_pairs", "down_inside")}[table.kernels]
    for name, tile in ((names[0], table.up), (names[1], table.down), ("up_pairs", Tile(16, 64, 4)),
                       ("down_inside", Tile(32, 64, 4))):  # fmt: skip
        got = resources(name, 768, 4, tile)
        assert got["spill"] == 0 and got["regs"] <= 128, (name, tile, got)


@pytest.mark.parametrize("method", ["two_pass", "dot"])
def test_op_compiles_without_graph_break(method):
    """Traced through by AOTAutograd (aot_eager): Inductor on a CPU cannot compile Span.edge's gathers with per-frame
    spans ("vr must not be None", torch 2.13; the reference Activation1d fails alike), and CPU engines keep the
    stock activation by default."""
    ref = _activation(SnakeBeta)
    check_compiles(FusedActivation1d(ref, method), lambda x, v: ref(x, Span(v), RATE), backend="aot_eager")


def test_refuses_an_unknown_method():
    with pytest.raises(ValueError, match="method"):
        FusedActivation1d(_activation(Snake), "shuffle")


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
    for choice, method in layout.FUSED_METHODS.items():
        swapped = layout.apply(model, layout.Rewrites(antialias=choice))
        assert {m.method for m in swapped.modules() if isinstance(m, FusedActivation1d)} == {method}


EXPORTED = """
import torch, triton
from triton.backends.compiler import GPUTarget


class Hopper:  # the target torch's analysis of the kernels' Triton IR compiles for (no GPU needed)
    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)

    def get_current_device(self):
        return 0


triton.runtime.driver.set_active(Hopper())
# fake CUDA tensors on a CPU-only torch as a CUDA build makes them: a convolution takes cuDNN's memory format
# (channels-last when its input or weight is), and Tensor.contiguous runs as aten.clone (the method's binding
# takes a CUDA device guard, which a CPU build lacks)
torch._C._select_conv_backend = lambda *a, **k: torch._C._ConvBackend.Cudnn
suggest = torch._prims_common.suggest_memory_format
torch._C._conv_determine_backend_memory_format = lambda x, w, backend: (
    torch.channels_last if torch.channels_last in (suggest(x), suggest(w)) else torch.contiguous_format)
torch.Tensor.contiguous = lambda self, memory_format=torch.contiguous_format: self if self.is_contiguous(
    memory_format=memory_format) else torch.ops.aten.clone(self, memory_format=memory_format)

from torch._higher_order_ops.triton_kernel_wrap import kernel_side_table, triton_kernel_wrapper_functional
from torch._inductor.fx_passes.reinplace import reinplace_inplaceable_ops_core
from torch._subclasses.fake_tensor import FakeTensorMode
from batchvoc.engines import layout
from batchvoc.engines.fused_antialias import FusedActivation1d
from batchvoc.models.bigvgan import BigVGAN

model = BigVGAN(n_mels=8, upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4], upsample_initial_channel=32,
                resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]]).eval()
net = layout.apply(model, layout.Rewrites(layout="channels_last_2d", antialias="fused")).requires_grad_(False)
with FakeTensorMode(allow_non_fake_inputs=True):
    half = lambda t: torch.empty_like(t, device="cuda", dtype=torch.float16 if t.is_floating_point() else t.dtype)
    net = net._apply(half)
    for m in net.modules():  # the filter taps stay float32 (FusedActivation1d._apply)
        if isinstance(m, FusedActivation1d):
            m.up_taps, m.down_taps = (torch.empty(t.shape, device="cuda") for t in (m.up_taps, m.down_taps))
    mel = torch.empty(2, 8, 16, device="cuda", dtype=torch.float16)
graph = torch.export.export(net, (mel, None), strict=False).run_decompositions(decompose_custom_triton_ops=True).graph
reinplace_inplaceable_ops_core(graph)
for node in graph.find_nodes(op="call_function", target=triton_kernel_wrapper_functional):
    args = node.kwargs["kwargs"]
    strides = [args[k].meta["val"].stride()[1] for k in ("x_ptr", "a_ptr", "y_ptr") if k in args]
    print(kernel_side_table.get_kernel(node.kwargs["kernel_idx"]).fn.__name__, *strides, "clones",
          *node.kwargs["tensors_to_clone"])
"""


@pytest.mark.slow
def test_exported_model_launches_pairs_on_channels_last_without_copies():
    """What an aoti package is compiled from: a laid-out BigVGAN (channels_last_2d, antialias=fused) exported on
    fake CUDA tensors (a CUDA build's convolution layouts), its operators decomposed into their launches: every
    anti-alias launch is TWO_PASS_TILES[True]'s pair, on channels-last x, a, y (channel stride 1), and after
    Inductor's reinplacing pass no launch copies a tensor first."""
    pytest.importorskip("triton", reason="triton is not installed (GPU machines have it)")
    run = subprocess.run([sys.executable, "-c", EXPORTED], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))  # fmt: skip
    launches = [line.split() for line in run.stdout.splitlines()]
    assert len(launches) == 2 * 9, run.stderr[-3000:]  # 9 activations: 2 AMP blocks x 2 x 2, and the last
    assert [name for name, *_ in launches] == ["up_pairs", "down_inside"] * 9
    assert all(rest == ["1", "1", "clones"] for _, *rest in launches), launches
