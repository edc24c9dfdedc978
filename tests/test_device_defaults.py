"""engine.batch / engine.window left null: the device picks them (batchvoc/device_defaults.py)."""

import numpy as np
import pytest

from batchvoc.chunking import pack
from batchvoc.device_defaults import CPU_ROW_LENGTH, default_batch, default_row_length
from batchvoc.models import load_vocoder
from batchvoc.runtime import EngineOptions, build_runtime, plan_chunks


def test_a_cpu_gets_one_row_of_512_frames_and_a_gpu_sixteen_rows_of_10_s():
    assert (default_batch("cpu"), default_row_length("cpu", 100.0)) == (1, 512)
    assert (default_batch("cuda:0"), default_row_length("cuda", 100.0)) == (16, 1000)
    assert default_row_length("cuda", 24000 / 256) == 938  # 937.5 frames, rounded up
    with pytest.raises(ValueError, match="frame rate"):
        default_row_length("cuda", 0.0)


@pytest.mark.parametrize(
    "preset, length", [("gsv_v4", 1000), ("bigvgan_v2_24khz_100band_256x", 944), ("hifigan_v1_universal", 864)]
)
def test_a_gpu_row_holds_a_10_s_utterance_whole_with_at_most_7_floor_frames(preset, length):
    model, loaded = load_vocoder(preset, "random")
    plan = plan_chunks(model, loaded, 2, None, default_row_length("cuda", loaded.frame_rate))
    assert plan.length == length and plan.length % 8 == 0
    frames = round(10 * loaded.frame_rate)
    mel = np.zeros((loaded.n_mels, frames), np.float32)
    (batch,) = pack([("a", mel), ("b", mel)], plan.chunk_frames, plan.context, plan.batch, loaded.silence)
    assert [(p.row, p.start, p.frames, p.last) for p in batch.pieces] == [(0, 0, frames, True), (1, 0, frames, True)]
    assert batch.packing_efficiency == frames / length >= 1 - 7 / length


def test_the_runtime_uses_the_device_default_only_where_the_job_leaves_it_null():
    small = {"upsample_initial_channel": 32}
    options = EngineOptions(backend="eager", precision="fp32", device="cpu")
    plan = build_runtime("hifigan_v1_universal", "random", options, small).plan
    assert plan.batch == 1 and plan.length == CPU_ROW_LENGTH
    options = EngineOptions(backend="eager", precision="fp32", device="cpu", batch=3, chunk_frames=100)
    plan = build_runtime("hifigan_v1_universal", "random", options, small).plan
    assert plan.batch == 3 and plan.chunk_frames == 100
