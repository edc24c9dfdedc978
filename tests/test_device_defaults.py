"""engine.batch / engine.window left null: the device picks them (batchvoc/device_defaults.py)."""

from batchvoc.device_defaults import CPU_ROW_LENGTH, default_batch, default_row_length
from batchvoc.runtime import EngineOptions, build_runtime


def test_a_cpu_gets_one_row_of_512_frames_and_a_gpu_sixteen_of_1024():
    assert (default_batch("cpu"), default_row_length("cpu")) == (1, 512)
    assert (default_batch("cuda:0"), default_row_length("cuda")) == (16, 1024)


def test_the_runtime_uses_the_device_default_only_where_the_job_leaves_it_null():
    small = {"upsample_initial_channel": 32}
    options = EngineOptions(backend="eager", precision="fp32", device="cpu")
    plan = build_runtime("hifigan_v1_universal", "random", options, small).plan
    assert plan.batch == 1 and plan.length == CPU_ROW_LENGTH
    options = EngineOptions(backend="eager", precision="fp32", device="cpu", batch=3, chunk_frames=100)
    plan = build_runtime("hifigan_v1_universal", "random", options, small).plan
    assert plan.batch == 3 and plan.chunk_frames == 100
