"""What the Triton-kernel tests share: packed-row spans, and running a check under Triton's CPU interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from batchvoc.models.span import Span

ROOT = Path(__file__).resolve().parents[2]
CHANNELS, RATE, FRAMES, ROWS = 24, 4, 30, 3


def spans() -> list[torch.Tensor | None]:
    """No span, one utterance per row [B, 2], and per frame [B, 2, F] with two utterances in row 1."""
    per_row = torch.tensor([[0, FRAMES], [3, FRAMES - 2], [5, 11]])
    per_frame = per_row.unsqueeze(-1).repeat(1, 1, FRAMES)
    per_frame[1, :, :12] = torch.tensor([2, 12]).view(2, 1)
    per_frame[1, :, 12:] = torch.tensor([14, 27]).view(2, 1)
    return [None, per_row, per_frame]


def layouts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, C, T] contiguous, and the same values with channels-last strides (memory [B, T, C])."""
    return x, x.transpose(1, 2).contiguous().transpose(1, 2)


def run_interpreted(check: str) -> None:
    """Run `check` (Python source) in a subprocess with TRITON_INTERPRET=1, so CPU tensors go to the Triton
    kernels; it must print "ok" last."""
    pytest.importorskip("triton", reason="triton is not installed (GPU machines have it)")
    script = "import torch\nfrom batchvoc.engines.triton_runtime import use_triton\nassert use_triton(torch.zeros(1))\n"
    script += textwrap.dedent(check) + "\nprint('ok')\n"
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def check_compiles(fused, want, backend: str = "inductor") -> None:
    """fused(x, Span(valid), RATE) under torch.compile (one whole graph, static shapes, through the operators into
    their plain-torch path on a CPU) equals want(x, valid) on rows holding two utterances."""
    valid = spans()[2]
    x = torch.randn(ROWS, CHANNELS, FRAMES * RATE)
    compiled = torch.compile(lambda x, v: fused(x, Span(v), RATE), fullgraph=True, dynamic=False, backend=backend)
    with torch.no_grad():
        assert (compiled(x, valid) - want(x, valid)).abs().max() <= 1e-5


def compiled_code(fn, args: tuple, how: str) -> str:
    """Inductor's code for fn(*args) (one whole graph, our kernels compiled `how`, ops.compiled_as), after checking
    the compiled output against eager (<= 1e-4)."""
    from torch._inductor.utils import run_and_get_code

    from batchvoc.engines.ops import compiled_as

    torch._dynamo.reset()
    with torch.no_grad(), compiled_as(how), torch._inductor.config.patch(fx_graph_cache=False):
        out, code = run_and_get_code(torch.compile(fn, fullgraph=True), *args)
        assert (out - fn(*args)).abs().max() <= 1e-4
    return "\n".join(code)


def compiled_buffers(fn, args: tuple, how: str, shape: tuple[int, ...]) -> int:
    """Buffers of `shape` that Inductor's code for fn(*args) allocates (`compiled_code`)."""
    sizes = ", ".join(str(n) for n in shape)
    return len(re.findall(rf"empty_strided\w*\(\({sizes}\)", compiled_code(fn, args, how)))


def generated_launches(fn, args: tuple, how: str) -> int:
    """Launches of Inductor's own generated kernels (C++ or Triton) in its code for fn(*args) (`compiled_code`)."""
    return len(re.findall(r"^\s+(?:cpp|triton)_\w+(?:\.run)?\(", compiled_code(fn, args, how), re.M))


def generated_traffic(fn, args: tuple, how: str) -> tuple[int, int]:
    """(tensors read, tensors stored) by Inductor's generated C++ kernels in its code for fn(*args) on a CPU
    (`compiled_code`): per launch, the input and output pointers its kernel's signature takes (an in_out_ptr counts
    as both)."""
    code = compiled_code(fn, args, how)
    pointers = {
        name: (len(re.findall(r"\b(?:in_ptr|in_out_ptr)\d+\b", sig)), len(re.findall(r"\b(?:in_)?out_ptr\d+\b", sig)))
        for name, sig in re.findall(r"^(\w+) = async_compile\.cpp_pybinding\(.*?void\s+kernel\(([^)]*)\)", code,
                                    re.M | re.S)
    }  # fmt: skip
    launched = [pointers[name] for name in re.findall(r"^\s+(\w+)\(", code, re.M) if name in pointers]
    return sum(r for r, _ in launched), sum(w for _, w in launched)


def dead_stores(fn, args: tuple, how: str) -> list[str]:
    """Buffers that Inductor's generated C++ kernels store in its code for fn(*args) on a CPU (`compiled_code`) and
    nothing reads afterwards (no kernel, extern call or return): a pass over memory for nothing. A buffer whose
    storage is only handed on for reuse (`# reuse`) is not read."""
    code = compiled_code(fn, args, how)
    kinds = {
        name: re.findall(r"\b(in_ptr|in_out_ptr|out_ptr)\d+\b", sig)
        for name, sig in re.findall(r"^(\w+) = async_compile\.cpp_pybinding\(.*?void\s+kernel\(([^)]*)\)", code,
                                    re.M | re.S)
    }  # fmt: skip
    body = code[code.index("def call(") :].splitlines()
    dead = []
    for i, line in enumerate(body):
        launch = re.match(r"\s+(\w+)\((.*)\)\s*$", line)
        if not launch or launch.group(1) not in kinds:
            continue
        names = [a.strip() for a in launch.group(2).split(",")]
        for kind, name in zip(kinds[launch.group(1)], names, strict=False):
            if kind == "out_ptr" and not any(
                re.search(rf"\b{name}\b", later) and "# reuse" not in later and not later.strip().startswith("del ")
                for later in body[i + 1 :]
            ):
                dead.append(f"{name} ({launch.group(1)})")
    return dead
