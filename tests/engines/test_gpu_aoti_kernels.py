"""On a CUDA GPU: AOTInductor packages launch batchvoc's Triton kernels themselves (engines/ops.py's triton_op).

gsv_v4 (fused resblocks) and BigVGAN v2 24k (fused anti-aliased Snake), random weights, two upsampling stages (the
kernels at 32 and 16 channels; a package compiles in well under a minute), fp16: the package's audio equals the
inductor engine's; the package holds our kernels and no call of a `batchvoc::` operator; a fresh process loads and
runs it without defining our operators or importing Dynamo or Inductor. Skips without a GPU or without triton.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from batchvoc.engines import build_engine
from batchvoc.engines.triton_runtime import triton_available
from batchvoc.models import load_vocoder
from tests.engines.conftest import snr_db

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not triton_available()[0], reason=f"needs a CUDA GPU with triton: {triton_available()[1]}"),
]

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (4, 96)
SMALL = dict(upsample_rates=[2, 2], upsample_kernel_sizes=[4, 4], upsample_initial_channel=64)  # 32, 16 channels
KERNELS = {"gsv_v4": b"lrelu_conv", "bigvgan_v2_24khz_100band_256x": b"up_snake"}


def _model(preset_name: str):
    return load_vocoder(preset_name, "random", SMALL)


def _batch(n_mels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """mel [B, n_mels, T] and per-row spans [B, 2] (whole rows, an inner span, a short utterance)."""
    rows, frames = SHAPE
    mel = 2 * torch.randn(rows, n_mels, frames, generator=torch.Generator().manual_seed(1)) - 5
    return mel, torch.tensor([[0, frames], [3, frames - 5], [0, 40], [10, frames]])


def _package_bytes(cache: Path) -> bytes:
    """Every member of the one package under cache, concatenated (generated C++, kernels' binaries, library)."""
    (package,) = (cache / "aoti").glob("*.pt2")
    with zipfile.ZipFile(package) as z:
        return b"".join(z.read(name) for name in z.namelist())


LOAD_IN_CHILD = """
import sys, torch
from batchvoc.engines import build_engine
from batchvoc.models import load_vocoder

model, preset = load_vocoder(sys.argv[1], "random", {small})
engine = build_engine(model, preset, "aoti", "fp16", "cuda", [{shape}], cache_dir=sys.argv[2])
mel, valid = torch.load(sys.argv[3])
torch.save(engine(mel, valid), sys.argv[4])
defined = [name for name in ("lrelu_conv", "antialiased_snake") if hasattr(torch.ops.batchvoc, name)]
print(engine.load_path, *defined, *(m for m in ("torch._dynamo", "torch._inductor") if m in sys.modules))
"""


@pytest.mark.slow
@pytest.mark.parametrize("preset_name", ["gsv_v4", "bigvgan_v2_24khz_100band_256x"])
def test_package_launches_our_kernels_itself(preset_name, tmp_path):
    model, preset = _model(preset_name)
    mel, valid = _batch(preset.n_mels)
    aoti = build_engine(model, preset, "aoti", "fp16", "cuda", [SHAPE], cache_dir=tmp_path)
    inductor = build_engine(model, preset, "inductor", "fp16", "cuda", [SHAPE])
    eager = build_engine(model, preset, "eager", "fp32", "cuda")
    got, want, ref = aoti(mel, valid).cpu(), inductor(mel, valid).cpu(), eager(mel, valid).cpu()
    print(f"{preset_name}: {aoti.describe()}; SNR aoti/inductor {snr_db(got, want):.1f} dB, "
          f"aoti/eager fp32 {snr_db(got, ref):.1f} dB, inductor/eager fp32 {snr_db(want, ref):.1f} dB")  # fmt: skip
    assert aoti.load_path == "built" and snr_db(got, want) >= 40

    package = _package_bytes(tmp_path)
    assert b"batchvoc::" not in package  # no operator called back through the dispatcher
    assert KERNELS[preset_name] in package  # our kernels, compiled into the package

    torch.save((mel, valid), tmp_path / "batch.pt")
    script = LOAD_IN_CHILD.format(small=SMALL, shape=SHAPE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    args = [preset_name, str(tmp_path), str(tmp_path / "batch.pt"), str(tmp_path / "child.pt")]
    run = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0 and run.stdout.split() == ["loaded"], (run.stdout, run.stderr[-3000:])
    assert torch.equal(torch.load(tmp_path / "child.pt"), aoti(mel, valid).cpu())
