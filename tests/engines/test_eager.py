"""Eager engine (the reference), precision policy, auto choice and check_backend errors."""

from __future__ import annotations

import logging

import pytest
import torch

from batchvoc.engines import build_engine, check_backend, choose_backend, cudnn_benchmark
from batchvoc.errors import ConfigError
from tests.engines.conftest import rel_l2, snr_db


def test_eager_fp32_equals_the_model(tiny, batch):
    model, preset = tiny
    mel, valid = batch
    engine = build_engine(model, preset, backend="eager", precision="fp32")
    audio = engine(mel, valid)
    with torch.inference_mode():
        expected = model(mel, valid)[:, 0]
    assert audio.shape == (2, 64 * 16) and audio.dtype == torch.float32
    assert torch.equal(audio, expected)
    assert (engine.backend, engine.precision, engine.device) == ("eager", "fp32", "cpu")
    assert "backend=eager" in engine.describe()


def test_valid_none_means_all_frames(tiny, batch):
    model, preset = tiny
    mel, _ = batch
    engine = build_engine(model, preset, backend="eager")
    assert torch.equal(engine(mel), engine(mel, torch.tensor([[0, 64], [0, 64]])))


def test_bf16_is_close_to_fp32_and_leaves_the_model_alone(tiny, batch):
    model, preset = tiny
    mel, valid = batch
    ref = build_engine(model, preset, backend="eager", precision="fp32")(mel, valid)
    engine = build_engine(model, preset, backend="eager", precision="bf16")
    audio = engine(mel, valid)
    assert engine.precision == "bf16" and audio.dtype == torch.float32
    assert snr_db(audio, ref) > 20
    assert 0 < rel_l2(audio, ref)  # it really ran in bf16
    assert next(model.parameters()).dtype == torch.float32


def test_fp16_on_cpu_runs_in_fp32_with_a_warning(tiny, batch, caplog):
    model, preset = tiny
    mel, valid = batch
    with caplog.at_level(logging.WARNING):
        engine = build_engine(model, preset, backend="eager", precision="fp16", device="cpu")
    assert engine.precision == "fp32"
    assert "fp16 on CPU runs in fp32" in caplog.text
    # it promised "use bf16 for a CPU speedup": hifigan_v1 bf16 ran 1.25x slower than fp32 on a Xeon with
    # avx512_bf16 (one thread, 200 frames: 1.60 s against 1.29 s), at 15.2 dB SNR to fp32 (docs/engines.md)
    assert "speedup" not in caplog.text and "not always faster" in caplog.text
    assert torch.equal(engine(mel, valid), build_engine(model, preset, backend="eager")(mel, valid))


def test_auto_picks_eager_on_cpu_with_a_reason(tiny):
    model, preset = tiny
    backend, reason = choose_backend("cpu")
    assert backend == "eager" and "no CUDA GPU" in reason
    engine = build_engine(model, preset, backend="auto", device="cpu")
    assert engine.backend == "eager" and engine.reason == reason


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_picks_aoti_on_a_gpu_without_tensorrt():
    from batchvoc.engines import aoti_available
    from batchvoc.engines.tensorrt import available as tensorrt_available

    backend, reason = choose_backend("cuda")
    if tensorrt_available()[0]:
        assert backend == "tensorrt"
    elif aoti_available()[0]:
        assert backend == "aoti" and "AOTInductor" in reason
    else:
        assert backend == "inductor" and aoti_available()[1] in reason


def test_cudnn_timing_is_on_but_for_aoti_unless_the_option_says():
    assert [cudnn_benchmark(b) for b in ("eager", "inductor", "aoti", "tensorrt")] == [True, True, False, True]
    assert cudnn_benchmark("aoti", True) and not cudnn_benchmark("inductor", False)


def test_the_cudnn_option_is_taken_by_the_build_not_passed_to_the_backend(tiny, batch):
    model, preset = tiny
    mel, valid = batch
    engine = build_engine(model, preset, backend="eager", precision="fp32", device="cpu", cudnn_benchmark=True)
    assert torch.equal(engine(mel, valid), build_engine(model, preset, backend="eager")(mel, valid))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_cudnn_option_sets_cudnns_timing_for_the_engine_built(tiny):
    model, preset = tiny
    before = torch.backends.cudnn.benchmark
    try:
        for choice in (False, True):
            build_engine(model, preset, backend="eager", device="cuda", shapes=[(1, 64)], cudnn_benchmark=choice)
            assert torch.backends.cudnn.benchmark is choice
    finally:
        torch.backends.cudnn.benchmark = before


@pytest.mark.parametrize(
    "backend,precision,key",
    [
        ("tensorrtt", "fp16", "engine.backend"),
        ("onnx", "fp32", "engine.backend"),
        ("eager", "int8", "engine.precision"),
    ],
)
def test_check_backend_names_the_key(backend, precision, key):
    with pytest.raises(ConfigError) as err:
        check_backend(backend, precision)
    assert err.value.key == key and repr(backend if key == "engine.backend" else precision) in str(err.value)


@pytest.mark.parametrize("backend", ["auto", "eager", "inductor"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_check_backend_accepts_known_values(backend, precision):
    check_backend(backend, precision)


def test_engine_rejects_a_bad_mel(tiny):
    model, preset = tiny
    engine = build_engine(model, preset, backend="eager")
    with pytest.raises(ValueError, match="n_mels"):
        engine(torch.zeros(80, 64))
