"""batchvoc's kernel operators (engines/ops.py): defined on first use, and seen into by torch.export.

The export runs on this CPU machine: the model and its inputs are fake CUDA tensors (no data, no GPU), which the
operators trace on their Triton path; Inductor, which would compile the kernels, is not run.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from batchvoc.engines import fused_resblock
from batchvoc.engines.fused_antialias import TWO_PASS_TILES, FusedActivation1d
from batchvoc.engines.fused_resblock import PackedConv, lrelu_conv, tile_list
from batchvoc.engines.ops import COMPILED_AS, compiled_as
from batchvoc.models.activations import SnakeBeta
from batchvoc.models.antialias import Activation1d
from batchvoc.models.span import Span
from tests.engines.kernels import ROOT

CHANNELS, RATE, FRAMES, ROWS = 32, 4, 12, 2  # 32: block copies take rows of 32 channels up
TWO_PASS = {"v1": ["up_snake", "down"], "pairs": ["up_pairs", "down_inside"]}  # fused_antialias.TWO_PASS_KERNELS


class Laid(nn.Module):
    """A laid-out layer in miniature: the fused anti-aliased SnakeBeta (two-pass, or one-pass "dot"), then a fused
    convolution with a block-copy tile; forward(x [B, C, T], valid [B, 2, T // RATE]) -> [B, C, T]."""

    def __init__(self, method: str):
        super().__init__()
        self.act = FusedActivation1d(Activation1d(SnakeBeta(CHANNELS, alpha_logscale=True)), method)
        self.conv = PackedConv(nn.Conv1d(CHANNELS, CHANNELS, 3, padding=1))
        self.tile = tile_list(dict(BLOCK_M=128, BLOCK_N=32, BLOCK_C=32, num_warps=4, num_stages=1, STAGES=3))
        lrelu_conv.define()

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        y = self.act(x, Span(valid), RATE)
        conv = self.conv
        return torch.ops.batchvoc.lrelu_conv(y, conv.weight, conv.bias, x, valid, RATE, conv.dilation, conv.padding,
                                             0.1, tile=self.tile)  # fmt: skip


def _export_on_fake_gpu(method: str) -> torch.export.ExportedProgram:
    """Laid(method) exported with fake CUDA tensors, x channels-last (so its convolution's tile takes block copies
    where the traced launch can: fused_resblock.block_copy_descriptor)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    net = Laid(method).eval().requires_grad_(False)
    with FakeTensorMode(allow_non_fake_inputs=True):
        net = net._apply(lambda t: torch.empty_like(t, device="cuda"))  # no data: the trace reads none
        x = torch.empty(ROWS, FRAMES * RATE, CHANNELS, device="cuda").transpose(1, 2)
        valid = torch.zeros(ROWS, 2, FRAMES, dtype=torch.int64, device="cuda")
        return torch.export.export(net, (x, valid))


def _launches(graph: torch.fx.Graph) -> list[torch.fx.Node]:
    """The graph's Triton launches, in order."""
    from torch._higher_order_ops.triton_kernel_wrap import triton_kernel_wrapper_functional

    return graph.find_nodes(op="call_function", target=triton_kernel_wrapper_functional)


def _kernel_names(graph: torch.fx.Graph) -> list[str]:
    """The Triton kernels a graph launches, in order (torch keeps them in a side table by index)."""
    from torch._higher_order_ops.triton_kernel_wrap import kernel_side_table

    return [kernel_side_table.get_kernel(n.kwargs["kernel_idx"]).fn.__name__ for n in _launches(graph)]


def _batchvoc_calls(graph: torch.fx.Graph) -> list[str]:
    return [str(n.target) for n in graph.nodes if n.op == "call_function" and "batchvoc" in str(n.target)]


@pytest.mark.parametrize(("method", "act_kernels"), [("two_pass", None), ("dot", ["one_pass_dot"])])
@pytest.mark.parametrize(("device_descriptors", "conv_kernel"), [(False, "lrelu_conv_tma"),
                                                                  (True, "lrelu_conv_tma_device")])  # fmt: skip
def test_export_sees_the_kernels(method, act_kernels, device_descriptors, conv_kernel, monkeypatch):
    """torch.export keeps each operator as one call; decomposed (what AOTInductor compiles), the calls become launches
    of our kernels; the convolution's block-copy tile takes its rows through a descriptor the compiled code makes on
    the host (recorded with the launch: triton_runtime.launch_with_descriptors) or, with
    fused_resblock.DEVICE_DESCRIPTORS, through one the kernel makes on the device."""
    pytest.importorskip("triton", reason="triton is not installed (GPU machines have it)")
    monkeypatch.setattr(fused_resblock, "DEVICE_DESCRIPTORS", device_descriptors)
    exported = _export_on_fake_gpu(method)
    act_kernels = act_kernels or TWO_PASS[TWO_PASS_TILES[True].kernels]  # x is channels-last
    op = "antialiased_snake" if method == "two_pass" else "antialiased_snake_one_pass"
    assert _batchvoc_calls(exported.graph) == [f"batchvoc.{op}.default", "batchvoc.lrelu_conv.default"]
    decomposed = exported.run_decompositions(decompose_custom_triton_ops=True)
    assert _batchvoc_calls(decomposed.graph) == []
    assert _kernel_names(decomposed.graph) == [*act_kernels, conv_kernel]
    descriptors = [n.kwargs["tma_descriptor_metadata"] for n in _launches(decomposed.graph)]
    block = {"x_desc": ("stable", ([1, 128, CHANNELS],))}  # Laid's tile: BLOCK_M 128, all channels
    assert descriptors == [{}] * len(act_kernels) + [{} if device_descriptors else block]


@pytest.mark.slow
def test_operators_are_defined_only_when_a_fused_module_is_built():
    """Importing the modules defines nothing (defining a triton_op imports torch._inductor and Dynamo: seconds);
    building a fused module defines its operator, whose kernels are listed for Inductor's cache key."""
    script = f"""
import sys, torch
from batchvoc.engines import layout
from batchvoc.engines.fused_resblock import FusedResBlock
from batchvoc.models.hifigan import ResBlock1
before = [hasattr(torch.ops.batchvoc, "lrelu_conv"), "torch._inductor" in sys.modules, "torch._dynamo" in sys.modules]
FusedResBlock(ResBlock1({CHANNELS}, 3, [1, 3, 5]))
kernels = torch._library.triton.get_triton_kernels_for_op("batchvoc::lrelu_conv")
print(*before, hasattr(torch.ops.batchvoc, "lrelu_conv"), *(k.fn.__name__ for k in kernels))
"""
    pytest.importorskip("triton", reason="triton is not installed (GPU machines have it)")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))  # fmt: skip
    kernels = ["lrelu_conv", "lrelu_conv_tma", "lrelu_conv_tma_device"]
    assert run.stdout.split() == ["False", "False", "False", "True", *kernels], run.stderr


def test_fused_modules_compile_on_a_machine_without_triton():
    """A CPU install without triton (batchvoc's own dependencies) that asks for the fused rewrites gets their
    plain-torch path, compiled: defining an operator lists no kernels there (listing them imports triton)."""
    script = f"""
import sys, torch
sys.modules["triton"] = None  # as if not installed: import fails, find_spec finds nothing
from batchvoc.engines.fused_resblock import FusedResBlock
from batchvoc.engines.ops import compiled_as
from batchvoc.models.hifigan import ResBlock1
from batchvoc.models.span import Span
ref = ResBlock1({CHANNELS}, 3, [1, 3, 5]).eval()
fused, x = FusedResBlock(ref), torch.randn(1, {CHANNELS}, 64)
with torch.no_grad(), compiled_as("opaque"):
    got = torch.compile(lambda x: fused(x, Span(None), 1), fullgraph=True)(x)
    print(float((got - ref(x, Span(None), 1)).abs().max()) < 1e-4,
          torch._library.triton.get_triton_kernels_for_op("batchvoc::lrelu_conv"))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))  # fmt: skip
    assert run.stdout.split() == ["True", "[]"], run.stderr[-3000:]


CLONES = """
import triton
from triton.backends.compiler import GPUTarget


class Hopper:  # the target torch's mutation analysis compiles the kernels to Triton IR for (no GPU needed for that)
    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)

    def get_current_device(self):
        return 0


triton.runtime.driver.set_active(Hopper())
import torch.utils._triton  # noqa: E402
torch.utils._triton.has_triton_tensor_descriptor_host_tma = lambda: True  # as on Hopper (torch asks the GPU)
from torch._higher_order_ops.triton_kernel_wrap import kernel_side_table, triton_kernel_wrapper_functional
from batchvoc.engines import fused_resblock
from tests.engines.test_ops import _export_on_fake_gpu

fused_resblock.DEVICE_DESCRIPTORS = {device_descriptors}

graph = _export_on_fake_gpu("{method}").run_decompositions(decompose_custom_triton_ops=True).graph
for node in graph.find_nodes(op="call_function", target=triton_kernel_wrapper_functional):
    print(kernel_side_table.get_kernel(node.kwargs["kernel_idx"]).fn.__name__, *node.kwargs["tensors_to_clone"])
"""
ONE_PASS_CLONES = pytest.mark.xfail(strict=True, reason="one_pass_tile returns the store's indices from a call whose "
                                    "arguments torch's analysis then counts as written")  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("method", "act_kernel"), [
    ("two_pass", None), ("recompute", "one_pass_recompute"),
    pytest.param("dot", "one_pass_dot", marks=ONE_PASS_CLONES),
    pytest.param("gather", "one_pass_gather", marks=ONE_PASS_CLONES),
])  # fmt: skip
@pytest.mark.parametrize("device_descriptors", [False, True])
def test_traced_launches_copy_no_input(method, act_kernel, device_descriptors):
    """Inductor clones every tensor torch's analysis of the kernel's Triton IR finds written (a functional graph):
    each kernel writes only its output, so nothing is copied before a launch."""
    pytest.importorskip("triton", reason="triton is not installed (GPU machines have it)")
    script = CLONES.format(method=method, device_descriptors=device_descriptors)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))  # fmt: skip
    clones = dict(line.split(maxsplit=1) for line in run.stdout.splitlines())
    conv_kernel = "lrelu_conv_tma_device" if device_descriptors else "lrelu_conv_tma"
    act_kernel = act_kernel or TWO_PASS[TWO_PASS_TILES[True].kernels][-1]
    assert act_kernel in clones and conv_kernel in clones, run.stderr[-2000:]
    assert set(clones.values()) <= {"a_ptr", "y_ptr", "out_ptr"}, clones  # the outputs (a: the two-pass activation)


@pytest.mark.parametrize("how", COMPILED_AS)
def test_a_compile_keeps_the_operator_or_traces_it(how):
    """ops.compiled_as: the graph AOTAutograd hands the compiler calls batchvoc::lrelu_conv ("opaque") or holds what
    the operator computes (here on a CPU its plain-torch convolution; on a GPU its kernel launch: "traced")."""
    from torch._dynamo.backends.common import aot_autograd

    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm

    conv = PackedConv(nn.Conv1d(CHANNELS, CHANNELS, 3, padding=1))
    lrelu_conv.define()

    def step(x, valid):
        return torch.ops.batchvoc.lrelu_conv(x, conv.weight, conv.bias, None, valid, RATE, 1, 1, 0.1)

    x, valid = torch.randn(ROWS, CHANNELS, FRAMES * RATE), torch.zeros(0, 2, 0, dtype=torch.int64)
    compiled = torch.compile(step, backend=aot_autograd(fw_compiler=record), fullgraph=True, dynamic=False)
    with torch.no_grad(), compiled_as(how):
        assert torch.allclose(compiled(x, valid), step(x, valid), atol=1e-6)
    targets = {str(n.target) for n in graphs[-1].graph.nodes if n.op == "call_function"}
    assert ("batchvoc.lrelu_conv.default" in targets) == (how == "opaque"), targets
    assert ("aten.convolution.default" in targets) == (how == "traced"), targets
    with pytest.raises(ValueError, match="kernels"), compiled_as("inlined"):
        pass


@pytest.mark.parametrize("how", COMPILED_AS)
def test_a_compile_notes_an_operator_without_writing_out_its_inputs(how, caplog):
    """Inductor's note on an operator it calls back holds each argument's text, which holds its producers' text:
    over a graph of operators each fed by two before it the text grows with every layer (torch 2.11 wrote it even
    with the log off: ~145 s of a gsv_v4 build on the H200). Under ops.compiled_as a note names each argument's type and
    size, and holds no producer's text (here, without it: the StorageBox of the Pointwise sum, with its source)."""
    lib = torch.library.Library("bvnotes", "FRAGMENT")  # our own test operators, one namespace per run
    lib.define(f"mix_{how}(Tensor a, Tensor b) -> Tensor")
    lib.define(f"last_{how}(Tensor a) -> Tensor")
    lib.impl(f"mix_{how}", lambda a, b: a * 0.5 + b * 0.25, "CompositeExplicitAutograd")
    lib.impl(f"last_{how}", lambda a: a * 2, "CompositeExplicitAutograd")
    lib.impl(f"mix_{how}", lambda a, b: torch.empty_like(a), "Meta")
    lib.impl(f"last_{how}", lambda a: torch.empty_like(a), "Meta")
    mix, last = getattr(torch.ops.bvnotes, f"mix_{how}"), getattr(torch.ops.bvnotes, f"last_{how}")

    def deep(x):
        a, b = x, x + 1
        for _ in range(3):
            a, b = mix(a, b), mix(b, a)
        return last(a + b)

    x = torch.randn(8)
    torch._dynamo.reset()
    with caplog.at_level(logging.INFO, "torch._inductor.graph"), torch.no_grad(), compiled_as(how), \
            torch._inductor.config.patch(fx_graph_cache=False):  # fmt: skip
        assert torch.allclose(torch.compile(deep, fullgraph=True)(x), deep(x))
    notes = [r.getMessage() for r in caplog.records if r.name == "torch._inductor.graph"]
    last_notes = [m for m in notes if f"bvnotes.last_{how}" in m]
    assert len(last_notes) == 1 and "args[0]: TensorBox size [8]" in last_notes[0], last_notes
    assert not any("StorageBox" in m or "Pointwise" in m for m in notes), notes
