"""The runtime builder: one place that turns preset + checkpoint + engine options into an engine and its plan."""

from __future__ import annotations

import json

import pytest
import torch

from batchvoc.chunking import ChunkPlan, chunk_frames_for
from batchvoc.device_defaults import default_row_length
from batchvoc.engines.fused_resblock import TileTable, tiles
from batchvoc.errors import ConfigError
from batchvoc.runtime import (
    EngineOptions,
    backend_options,
    build_runtime,
    plan_chunks,
    runtime_from_settings,
)
from batchvoc.settings import JobSettings

SMALL = {"upsample_initial_channel": 32}  # hifigan_v1's architecture at toy width: builds in a blink


@pytest.fixture(scope="module")
def runtime():
    return build_runtime("hifigan_v1_universal", "random", EngineOptions(backend="eager", precision="fp32", batch=2),
                         SMALL)  # fmt: skip


def test_chunk_frames_make_a_round_row():
    assert chunk_frames_for(26) + 2 * 26 == 1024
    assert chunk_frames_for(600) == 8  # context wider than the row: the row is 2C + ROW_MULTIPLE (8)
    assert (chunk_frames_for(10, length=100, multiple=32) + 20) % 32 == 0
    with pytest.raises(ValueError, match="context"):
        chunk_frames_for(-1)


def test_plan_is_the_models_receptive_field(runtime):
    plan = runtime.plan
    assert isinstance(plan, ChunkPlan)
    assert plan.context == runtime.model.receptive_field() > 0
    assert (
        (plan.batch, plan.length) == plan.shape == (2, default_row_length(runtime.device, runtime.preset.frame_rate))
    )  # CPU: 512
    assert plan.hop == runtime.preset.hop_length == 256
    assert plan.log_mel_floor == pytest.approx(runtime.preset.silence)
    assert plan_chunks(runtime.model, runtime.preset, 4, 100).shape == (4, 100 + 2 * plan.context)


def test_engine_is_built_for_the_plan(runtime):
    engine, plan = runtime.engine, runtime.plan
    mel = torch.randn(*plan.shape[:1], runtime.preset.n_mels, plan.length) - 5
    with torch.inference_mode():
        want = runtime.model(mel, None).reshape(plan.batch, -1)
    assert torch.equal(engine(mel), want)
    assert (engine.backend, engine.load_path, runtime.load_path) == ("eager", "built", "built")
    assert runtime.ready_s > 0 and "ready in" in runtime.describe()


def test_bad_options_name_their_key():
    with pytest.raises(ConfigError, match="engine.options.max_channels"):
        EngineOptions(tunables={"max_channels": 8}).check()
    with pytest.raises(ConfigError, match="engine.backend"):
        EngineOptions(backend="onnx").check()
    with pytest.raises(ConfigError, match="engine.batch"):
        EngineOptions(batch=0).check()
    with pytest.raises(ConfigError, match="engine.options.fused_max_channels"):
        backend_options("inductor", {"fused_max_channels": "many"})
    with pytest.raises(ConfigError, match="model.checkpoint"):
        build_runtime("hifigan_v1_universal", None, EngineOptions(backend="eager"))


def test_each_backend_gets_only_its_tunables():
    tunables = {"fused_max_channels": "32", "mode": "default", "optimization_level": "3"}
    assert backend_options("inductor", tunables) == {"fused_max_channels": 32, "mode": "default"}
    assert backend_options("aoti", tunables) == {"fused_max_channels": 32}
    assert backend_options("tensorrt", tunables) == {"optimization_level": 3}


def test_tunables_reach_the_engine_not_a_global():
    options = EngineOptions(backend="eager", precision="fp32", batch=1,
                            tunables={"resblocks": "fused", "fused_max_channels": 16, "superrows": "2"})  # fmt: skip
    runtime = build_runtime("hifigan_v1_universal", "random", options, SMALL)
    assert "resblocks=fused<=16ch superrows<=2" in runtime.engine.describe()
    default = build_runtime("hifigan_v1_universal", "random", EngineOptions(backend="eager", batch=1,
                            tunables={"resblocks": "fused"}), SMALL)  # fmt: skip
    assert "resblocks=fused<=64ch" in default.engine.describe()


def test_tile_table_from_json(tmp_path):
    path = tmp_path / "best.json"
    entry = {"BLOCK_M": 64, "BLOCK_N": 16, "BLOCK_C": 16, "num_warps": 2, "num_stages": 1}
    path.write_text(json.dumps({"16,7,1": entry}))
    table = TileTable(str(path))
    assert table(16, 16, 7, True) == entry
    assert table(16, 16, 7, False) == tiles(16, 16, 7, False)  # not listed: the default
    with pytest.raises(ValueError, match="C_IN,KSIZE,ACT"):
        TileTable({"16,7": entry})
    with pytest.raises(ValueError, match="unknown keys"):
        TileTable({"16,7,1": {"BLOCK_Q": 1}})


def test_runtime_from_job_settings(tmp_path):
    settings = JobSettings(manifest=None, out_dir=str(tmp_path), preset="hifigan_v1_universal", checkpoint="random",
                           hparams=SMALL, backend="eager", precision="fp32", batch=3, window=200,
                           engine_options={"layout": "ncl"})  # fmt: skip
    runtime = runtime_from_settings(settings, "cpu")
    assert runtime.plan.chunk_frames == 200 and runtime.plan.batch == 3
    assert runtime.device == torch.device("cpu")


def test_a_job_s_engines_keep_mode_default_unless_its_options_say_otherwise(tmp_path):
    """A job's actors call the engine from a device thread of their own: no CUDA graphs by default there, for
    inductor nor aoti (engines/cuda_graph.graphs_pay gives them to small batches elsewhere)."""
    common = dict(manifest=None, out_dir=str(tmp_path), preset="hifigan_v1_universal", checkpoint="random", batch=1)
    plain = EngineOptions.from_settings(JobSettings(**common, engine_options={"layout": "ncl"}), "cpu")
    assert plain.tunables == {"mode": "default", "cuda_graphs": False, "layout": "ncl"}
    asked = EngineOptions.from_settings(JobSettings(**common, engine_options={"mode": "reduce-overhead"}), "cpu")
    assert asked.tunables == {"mode": "reduce-overhead", "cuda_graphs": False}
    graphed = EngineOptions.from_settings(JobSettings(**common, engine_options={"cuda_graphs": True}), "cpu")
    assert graphed.tunables == {"mode": "default", "cuda_graphs": True}
