"""python -m batchvoc.build: the job's engine packages built, checked and listed on this machine (CPU here)."""

from __future__ import annotations

import pytest
import torch

from batchvoc.build import main
from batchvoc.engines import aoti_available


def _args(tmp_path, *more: str) -> list[str]:
    return ["job=hifigan_v1", "model.checkpoint=pretrained", "engine.precision=fp32", "engine.batch=2",
            f"engine.cache_dir={tmp_path / 'cache'}", f"output.dir={tmp_path / 'out'}", *more]  # fmt: skip


def test_eager_has_nothing_to_build(tmp_path, capsys):
    assert main(_args(tmp_path, "engine.backend=eager")) == 0
    out = capsys.readouterr().out
    assert "hifigan_v1_universal eager fp32 2x" in out and "on cpu" in out and "nothing to build" in out
    assert not (tmp_path / "cache" / "aoti").exists()


def test_bad_configuration_names_the_key(tmp_path, capsys):
    assert main(_args(tmp_path, "engine.backend=onnx")) == 1
    assert "engine.backend" in capsys.readouterr().err
    assert main(_args(tmp_path, "engine.options={nope: 1}", "engine.backend=aoti")) == 1
    assert "engine.options.nope" in capsys.readouterr().err


@pytest.mark.skipif(not aoti_available()[0], reason="aoti unavailable")
def test_check_lists_a_missing_package(tmp_path, capsys):
    assert main(_args(tmp_path, "engine.backend=aoti", "--check")) == 2
    out = capsys.readouterr().out
    assert ": missing" in out and "hifigan_v1_universal-fp32-2x" in out
    assert not list((tmp_path / "cache").rglob("*.pt2"))


@pytest.mark.slow
@pytest.mark.skipif(not aoti_available()[0], reason="aoti unavailable")
def test_build_then_check_then_load(tmp_path, capsys):
    """Build (a C++ compile of HiFi-GAN V1, about a minute on 2 cores), then --check finds it, then a second build
    loads it; the key printed is the file's name."""
    assert main(_args(tmp_path, "engine.backend=aoti")) == 0
    first = capsys.readouterr().out
    (package,) = (tmp_path / "cache" / "aoti").glob("*.pt2")
    assert ": built" in first and str(package) in first and package.stem in first
    assert main(_args(tmp_path, "engine.backend=aoti", "--check")) == 0
    assert ": present" in capsys.readouterr().out
    assert main(_args(tmp_path, "engine.backend=aoti")) == 0
    assert ": loaded" in capsys.readouterr().out


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (auto picks aoti only there)")
def test_a_package_auto_cannot_build_shows_as_failed(tmp_path, capsys):
    from batchvoc.engines.tensorrt import available as tensorrt_available

    if tensorrt_available()[0] or not aoti_available()[0]:
        pytest.skip("auto picks aoti only without TensorRT and with a C++ compiler")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "aoti").write_text("a file where the packages' folder goes")
    assert main(_args(tmp_path, "engine.backend=auto", "engine.precision=fp16")) == 1
    out = capsys.readouterr().out
    assert " aoti fp16 " in out and ": failed (see the log above)" in out, out
