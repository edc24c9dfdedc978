"""TensorRT engine: the cache key (CPU), the missing-package error (CPU), and a GPU build (skips without TensorRT)."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from batchvoc.engines import build_engine, check_backend
from batchvoc.engines.cache import engine_key, weights_digest, write_atomic
from batchvoc.errors import ConfigError
from tests.engines.conftest import rel_l2

HAVE_TRT = all(importlib.util.find_spec(m) is not None for m in ("tensorrt", "torch_tensorrt"))
HAVE_GPU = torch.cuda.is_available()

PARTS = dict(  # every part of the cache key: (its value in BASE, another value)
    weights=("ab" * 32, "cd" * 32),
    preset=("gsv_v4", "hifigan_v1_universal"),
    precision=("fp16", "bf16"),
    shapes=([(16, 536)], [(8, 536)]),
    gpu_name=("NVIDIA H100 80GB HBM3", "NVIDIA H200"),
    capability=("sm_90", "sm_89"),
    trt_version=("10.15.1", "10.16.0"),
    extra=({"torch_tensorrt": "2.11.0"}, {"torch_tensorrt": "2.12.0"}),
)
BASE = {part: values[0] for part, values in PARTS.items()}


def test_cache_key_is_stable_and_file_name_safe():
    key = engine_key(**BASE)
    assert key == engine_key(**BASE)
    assert key.startswith("gsv_v4-fp16-16x536-")
    assert all(c.isalnum() or c in "-_." for c in key)


@pytest.mark.parametrize("part", sorted(PARTS))
def test_cache_key_changes_with_every_part(part):
    assert engine_key(**{**BASE, part: PARTS[part][1]}) != engine_key(**BASE)


def test_weights_digest_sees_one_changed_weight(tiny):
    model, _ = tiny
    other = type(model)(**{k: v for k, v in tiny[1].hparams.items()})
    other.load_state_dict(model.state_dict())
    assert weights_digest(other) == weights_digest(model)
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-3
    assert weights_digest(other) != weights_digest(model)
    assert weights_digest(copy.deepcopy(model).to(torch.bfloat16)) != weights_digest(model)


def test_write_atomic_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "engine.ep"

    def fail(tmp):
        open(tmp, "wb").write(b"half")
        raise RuntimeError("build died")

    with pytest.raises(RuntimeError):
        write_atomic(target, fail)
    assert not target.exists() and list(target.parent.iterdir()) == []
    write_atomic(target, lambda tmp: open(tmp, "wb").write(b"engine"))
    assert target.read_bytes() == b"engine"


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed: the missing-package error cannot happen")
def test_tensorrt_missing_is_a_config_error_before_any_work(tiny):
    model, preset = tiny
    for call in (lambda: check_backend("tensorrt", "fp16"), lambda: build_engine(model, preset, "tensorrt")):
        with pytest.raises(ConfigError) as err:
            call()
        # without a GPU it says that first; with one, how to install
        expected = "pip install 'batchvoc[tensorrt]'" if torch.cuda.is_available() else "needs a CUDA GPU"
        assert err.value.key == "engine.backend" and expected in str(err.value)


@pytest.mark.gpu
@pytest.mark.skipif(not (HAVE_TRT and HAVE_GPU), reason="needs TensorRT + torch-tensorrt and a CUDA GPU")
@pytest.mark.parametrize("precision,limit", [("fp32", 1e-3), ("fp16", 2e-2)])
def test_tensorrt_matches_eager_and_caches(tiny, batch, tmp_path, precision, limit):
    model, preset = tiny
    mel, valid = batch
    eager = build_engine(model, preset, backend="eager", precision="fp32", device="cuda")
    engine = build_engine(model, preset, "tensorrt", precision, "cuda", shapes=[(2, 64)], cache_dir=tmp_path)
    assert rel_l2(engine(mel, valid).cpu(), eager(mel, valid).cpu()) <= limit
    assert len(list((tmp_path / "tensorrt").glob("*.ep"))) == 1
    again = build_engine(model, preset, "tensorrt", precision, "cuda", shapes=[(2, 64)], cache_dir=tmp_path)
    assert torch.allclose(again(mel, valid), engine(mel, valid))
