"""batchvoc's kernels as torch operators (`batchvoc::name`) made with torch.library.triton_op, defined on first use.

    @kernel_op("lrelu_conv", kernels=lambda: [conv_kernels.lrelu_conv])  # the Triton kernels it may launch
    def lrelu_conv(x: Tensor, weight: Tensor, ...) -> Tensor: ...           # returns a KernelOp, called like fn

In a trace fn launches its kernels as `torch.library.wrap_triton(kernel)[grid](...)` (triton_runtime.launcher), with
a grid of ints, and it holds no data-dependent Python: triton_op takes fn as the operator's fake (meta) function
too, and torch.compile / AOTInductor trace into it, so Inductor compiles each launched kernel into its own code. An
AOTInductor package then launches the kernels itself (its C++ wrapper, no call back into Python per launch);
torch.export keeps the operator as a call (`ExportedProgram.run_decompositions(decompose_custom_triton_ops=True)`
shows the kernels).

`compiled_as("opaque")` keeps them opaque to a compile instead (Inductor calls the operator, which launches its
kernels as an eager call does): the inductor engine's default (H200 session 4: gsv_v4 traced ran 17% slower, its
kernels' arithmetic in fp64 until session 12 and their block copies lost until session 21, whose traced launches
record the host descriptor: fused_resblock's `block_copy_descriptor`). AOTInductor packages trace them by default
(gsv_v4 at 0.98-1.00x the inductor engine's speed, session 21); `aoti:kernels=opaque` builds one that calls them
back into Python per launch (each loading process then defines the operators: `define_all`).

Defined lazily (`KernelOp.define`; the modules that call an operator define it when they are built): defining a
triton_op imports torch._inductor and torch._dynamo (triton_op's search of fn's source for kernels; custom_op's
Dynamo wrapper), seconds on the H200 image. A process that only loads a package never defines or calls them.

`kernels` names the kernels explicitly for Inductor's AOTAutograd cache, which hashes an operator's kernels into
its key (so an edited kernel is recompiled): triton_op finds them by reading fn's source only when fn names them as
module globals, and the kernel modules import triton, which batchvoc does only where the kernels run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from batchvoc.backends import CHOICES


class KernelOp:
    """`batchvoc::name` from fn (its schema from fn's annotations; no gradients): call it as fn, or call
    `define()` once and then torch.ops.batchvoc.name (what traced code should call)."""

    def __init__(self, name: str, fn: Callable, kernels: Callable[[], list]):
        self.name, self.fn, self.kernels = name, fn, kernels
        self._op = None
        functools.update_wrapper(self, fn)
        _KERNEL_OPS.append(self)

    def define(self):
        """The operator torch.ops.batchvoc.name, defined on the first call (imports torch._inductor: module doc)."""
        if self._op is None:
            qualname = f"batchvoc::{self.name}"
            torch.library.triton_op(qualname, self.fn, mutates_args=())
            found = getattr(torch._library.triton, "triton_ops_to_kernels", None)  # the cache's list (module doc)
            if found is not None:  # without triton no kernel launches (plain-torch path): none to list
                found[qualname] = list(self.kernels()) if importlib.util.find_spec("triton") else []
            self._op = getattr(torch.ops.batchvoc, self.name)
        return self._op

    def __call__(self, *args, **kwargs):
        return self.define()(*args, **kwargs)


_KERNEL_OPS: list[KernelOp] = []  # every KernelOp made (defined or not)


def define_all() -> None:
    """Define every batchvoc operator (a process that loads a package calling them back needs them by name)."""
    from batchvoc.engines import fused_antialias, fused_resblock, post_conv, superrow  # noqa: F401 - they make them

    for op in _KERNEL_OPS:
        op.define()


def kernel_op(name: str, kernels: Callable[[], list]) -> Callable[[Callable], KernelOp]:
    """Decorator: `batchvoc::name` from the decorated function, launching `kernels()` (module doc)."""
    return lambda fn: KernelOp(name, fn, kernels)


COMPILED_AS = CHOICES["kernels"]  # how a compile takes our operators (module doc)


def check_compiled_as(how: str) -> None:
    """ValueError for a `kernels` value other than COMPILED_AS's."""
    if how not in COMPILED_AS:
        raise ValueError(f"unknown kernels {how!r}; choose one of {', '.join(COMPILED_AS)}")


@contextlib.contextmanager
def compiled_as(how: str) -> Iterator[None]:
    """Compiles (torch.compile, AOTInductor) inside trace our operators' kernels ("traced") or keep each operator a
    call ("opaque": torch's switch that torch.export uses to keep triton ops). Raises ValueError for another value."""
    check_compiled_as(how)
    if how == "traced":
        with descriptors_of_views_in_autotune_blocks(), wide_rows_in_compiled_descriptors(), short_fallback_notes():
            yield
        return
    from torch._functorch import config

    _inputs_stored_first()
    with config.patch(decompose_custom_triton_ops=False), short_fallback_notes():
        yield


@contextlib.contextmanager
def short_fallback_notes() -> Iterator[None]:
    """Inductor, lowering an operator it has no lowering for (ours, compiled "opaque"), logs a note naming it with
    its arguments as text (`OperatorIssue.operator_str`), made whether the log is on or not in torch 2.11
    (torch/_inductor/graph.py, `call_function`; 2.13 makes it only for an enabled log). An argument's text holds
    the text of what it was computed from, so over a graph of our operators, each fed by two or three before it (a
    resblock's conv and residual), it grows with every layer: the H200's gsv_v4 fp16 engine spent ~145 s of a 218 s
    build writing such notes (BENCHMARKS.md, session 25). Here the note names the operator and each argument's type
    and size only."""
    from torch._inductor.exc import OperatorIssue

    original = OperatorIssue.__dict__["operator_str"]
    OperatorIssue.operator_str = staticmethod(_operator_note)
    try:
        yield
    finally:
        OperatorIssue.operator_str = original


def _operator_note(target, args, kwargs) -> str:
    """`short_fallback_notes`'s text: `target`, then one line per argument."""
    lines = [f"  target: {target}"] + [f"  args[{i}]: {_argument_note(a)}" for i, a in enumerate(args)]
    return "\n".join(lines + [f"  kwargs[{k}]: {_argument_note(v)}" for k, v in (kwargs or {}).items()])


def _argument_note(value) -> str:
    """Plain values as they are; an IR node by its type and size, never its text (it holds its producers')."""
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_argument_note(v) for v in value) + "]"
    size = getattr(value, "get_size", None)
    try:
        return f"{type(value).__name__} size {list(size())}" if callable(size) else type(value).__name__
    except Exception:  # noqa: BLE001 -- a node without a size: its type is enough for a log line
        return type(value).__name__


@contextlib.contextmanager
def descriptors_of_views_in_autotune_blocks() -> Iterator[None]:
    """AOTInductor compiles the Triton kernels a graph launches by running a Python block of example launches, in
    which torch writes a host descriptor's tensor (triton_runtime.launch_with_descriptors) as its C++ wrapper refers to
    it: for a view, such as the [B, T, C] rows of a channels-last activation, that is C++ (`reinterpret_tensor_wrapper
    (buf3, 3, int_array_5, ...)`), and the block fails ("invalid decimal literal"; H200, torch 2.11). The block defines
    that view's example tensor under its base buffer's name, so there the descriptor is made from the name.
    (torch/_inductor/codegen/wrapper.py: generate_example_arg_value, _generate_tma_descriptor_call_stable.)"""
    from torch._inductor import ir
    from torch._inductor.codegen.wrapper import PythonWrapperCodegen

    original = PythonWrapperCodegen._generate_tma_descriptor_call_stable

    def stable_call(self, desc, apply_size_hints=False):
        if not (apply_size_hints and isinstance(desc.get_tensor(), ir.ReinterpretView)):
            return original(self, desc, apply_size_hints)
        block = [int(b) for b in desc.block_shape]  # ours are static
        name = desc.get_tensor().get_name()
        return f"triton.tools.tensor_descriptor.TensorDescriptor.from_tensor({name}, {block})"

    PythonWrapperCodegen._generate_tma_descriptor_call_stable = stable_call
    try:
        yield
    finally:
        PythonWrapperCodegen._generate_tma_descriptor_call_stable = original


# torch's C++ helper that makes a compiled graph's host descriptors (initTMADescriptor), at the line where it picks
# the swizzle from the box's row; and what goes before that line: a row wider than 128 bytes taken in boxes of 128
# bytes, as Triton's own launcher takes it (the kernel, compiled for the whole row, copies it box by box).
_DESCRIPTOR_ROW_LINE = "uint32_t contigDimSizeInByte = elemSize * blockSizeInt[0];"
_DESCRIPTOR_ROW_SPLIT = "if (rank > 1 && elemSize * blockSizeInt[0] > 128) { blockSizeInt[0] = 128 / elemSize; }\n"


@functools.cache
def compiled_descriptors_take_wide_rows() -> bool:
    """Whether this torch's compiled host descriptors can take a block row wider than 128 bytes once patched
    (`wide_rows_in_compiled_descriptors`): its C++ helper has the line the patch goes before."""
    overrides = _cuda_op_overrides()
    return overrides is not None and _DESCRIPTOR_ROW_LINE in overrides().tma_descriptor_helpers()


def _cuda_op_overrides() -> type | None:
    try:
        from torch._inductor.codegen.cuda.device_op_overrides import CUDADeviceOpOverrides
    except ImportError:
        return None
    return CUDADeviceOpOverrides if torch.version.hip is None else None


@contextlib.contextmanager
def wide_rows_in_compiled_descriptors() -> Iterator[None]:
    """Compiled code (AOTInductor's C++) makes a host descriptor with the block's whole row as one box, and the
    driver refuses a box row wider than the 128-byte swizzle ("invalid argument": gsv_v4's 128-channel upsampler in
    fp16), where Triton's launcher of an eager call splits such a row into 128-byte boxes and the kernel, compiled
    for the whole row, copies it box by box into one tile. Here the C++ helper splits it the same way, so a traced
    launch compiles the kernel an eager one runs: until session 33 the kernel split such rows itself, one product per
    box (gsv_v4's upsampler conv: 102 registers against 96, 544 against 496 us per forward on the H200).
    (torch/_inductor/codegen/cuda/device_op_overrides.py: initTMADescriptor; triton's driver: fillTMADescriptor.)"""
    if not compiled_descriptors_take_wide_rows():
        yield
        return
    overrides = _cuda_op_overrides()
    original = overrides.tma_descriptor_helpers

    def helpers(self) -> str:
        return original(self).replace(_DESCRIPTOR_ROW_LINE, _DESCRIPTOR_ROW_SPLIT + _DESCRIPTOR_ROW_LINE)

    overrides.tma_descriptor_helpers = helpers
    try:
        yield
    finally:
        overrides.tma_descriptor_helpers = original


def _inputs_stored_first() -> None:
    """Tell Inductor now that our operators' inputs are stored before the calls, as it tells itself once it first
    lowers an operator it calls back (`add_needs_realized_inputs`, done by its fallback): until then it copies an
    input not yet stored into a buffer of its own per call, so a gsv_v4 engine's first fused stage wrote the
    activation its three resblocks share three times, the later stages once (H200, BENCHMARKS.md session 17)."""
    from torch._inductor.lowering import add_needs_realized_inputs

    add_needs_realized_inputs([op._op for op in _KERNEL_OPS if op._op is not None])


# engines/: what our operators are compiled from (kernels, launch parameters, plain-torch paths)
KERNEL_SOURCES = ("ops.py", "triton_runtime.py", "fused_antialias.py", "antialias_kernels.py", "one_pass_kernels.py",
                  "fused_resblock.py", "conv_kernels.py", "span_kernels.py", "post_conv.py", "superrow.py",
                  "superrow_kernels.py", "fused_upsample.py", "first_convs.py")  # fmt: skip


def kernels_digest() -> str:
    """sha256 (16 hex digits) of KERNEL_SOURCES. A compiled graph holds our operators' kernels and launches as they
    were traced, so its cache key needs it: aoti package keys, and the inductor engine's compile caches (whose own
    key counts the kernels' source but not the Python that launches them)."""
    digest = hashlib.sha256()
    for name in KERNEL_SOURCES:
        digest.update(Path(__file__).with_name(name).read_bytes())
    return digest.hexdigest()[:16]
