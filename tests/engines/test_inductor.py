"""Inductor engine on the CPU: equals eager, compiles each shape once at build time, never recompiles silently."""

from __future__ import annotations

import os

import pytest
import torch
from torch._dynamo.utils import counters

from batchvoc.engines import build_engine
from tests.engines.conftest import rel_l2

SHAPES = [(2, 64), (1, 64)]


@pytest.fixture(scope="module")
def compiled(tiny, tmp_path_factory):
    """One inductor engine for two shapes (compiling takes ~10-20 s on 2 CPU cores), with its own cache dir."""
    model, preset = tiny
    cache = tmp_path_factory.mktemp("cache")
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    engine = build_engine(model, preset, backend="inductor", precision="fp32", shapes=SHAPES, cache_dir=cache)
    yield engine, cache
    if before is None:
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = before


@pytest.mark.slow
def test_inductor_equals_eager_and_does_not_recompile(compiled, tiny, batch):
    engine, _ = compiled
    model, preset = tiny
    mel, valid = batch
    eager = build_engine(model, preset, backend="eager")
    graphs = counters["stats"]["unique_graphs"]
    for _ in range(3):
        assert rel_l2(engine(mel, valid), eager(mel, valid)) <= 1e-4
        other = torch.tensor([[0, 10], [20, 64]])  # other spans: same graph
        assert rel_l2(engine(mel, other), eager(mel, other)) <= 1e-4
        assert rel_l2(engine(mel[:1], valid[:1]), eager(mel[:1], valid[:1])) <= 1e-4
    assert counters["stats"]["unique_graphs"] == graphs
    assert (engine.backend, engine.precision, engine.shapes) == ("inductor", "fp32", SHAPES)


@pytest.mark.slow
def test_unknown_shapes_fail_loudly(compiled, batch):
    engine, _ = compiled
    mel, valid = batch
    with pytest.raises(ValueError, match="built for"):
        engine(mel[:, :, :32], valid)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="recompile"):
        engine._run(torch.zeros(3, 80, 64), torch.tensor([[0, 64]] * 3))  # past the shape check: Dynamo refuses


@pytest.mark.slow
def test_compile_cache_lands_in_cache_dir(compiled):
    _, cache = compiled
    folder = cache / "inductor"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(folder.resolve())
    assert any(folder.rglob("*"))


def test_compile_caches_are_keyed_by_our_kernels_source_where_the_model_calls_them():
    from batchvoc.engines.inductor import _cache_tag
    from batchvoc.engines.layout import Rewrites
    from batchvoc.engines.ops import kernels_digest

    fused = Rewrites(resblocks="fused")
    assert _cache_tag(Rewrites(), "opaque") == ""
    assert _cache_tag(fused, "opaque") == _cache_tag(Rewrites(antialias="fused"), "opaque") != ""
    assert kernels_digest() in _cache_tag(fused, "opaque") != _cache_tag(fused, "traced")


@pytest.mark.slow
@pytest.mark.parametrize("kernels", ["opaque", "traced"])
def test_our_operators_compiled_either_way_equal_eager(tiny, batch, kernels):
    """Fused resblocks (on a CPU their plain-torch path) called by the compiled graph or compiled into it."""
    model, preset = tiny
    mel, valid = batch
    engine = build_engine(model, preset, backend="inductor", precision="fp32", shapes=[SHAPES[0]],
                          resblocks="fused", kernels=kernels)  # fmt: skip
    assert f"resblocks=fused<=64ch kernels={kernels}" in engine.describe()
    assert rel_l2(engine(mel, valid), build_engine(model, preset, backend="eager")(mel, valid)) <= 1e-5
    with pytest.raises(ValueError, match="kernels"):
        build_engine(model, preset, backend="inductor", shapes=[SHAPES[0]], kernels="inlined")


@pytest.mark.slow
def test_engines_of_both_kernels_in_one_process_get_their_own_graphs(tiny, batch, monkeypatch):
    """A traced engine built after an opaque one (the bench's lines, one process) compiles its own graph: it calls
    no operator back (on a CPU the operator's plain-torch path is what an opaque graph calls)."""
    from batchvoc.engines import fused_resblock

    model, preset = tiny
    mel, valid = batch
    calls = []
    plain = fused_resblock._torch_forward
    monkeypatch.setattr(fused_resblock, "_torch_forward", lambda *a, **k: calls.append(1) or plain(*a, **k))
    engines = {k: build_engine(model, preset, backend="inductor", precision="fp32", shapes=[SHAPES[0]],
                               resblocks="fused", kernels=k) for k in ("opaque", "traced")}  # fmt: skip
    for kernels, expected in (("opaque", True), ("traced", False)):
        calls.clear()
        engines[kernels](mel, valid)
        assert bool(calls) is expected, kernels


def test_small_batches_on_a_gpu_default_to_cuda_graphs():
    """Where the host's launches outlast a forward (a few rows per batch on a GPU), CUDA graphs; not on a CPU, nor
    once any of the engine's shapes passes CUDA_GRAPH_MAX_BATCH rows."""
    from batchvoc.engines.cuda_graph import CUDA_GRAPH_MAX_BATCH
    from batchvoc.engines.inductor import default_mode

    assert default_mode("cuda", [(1, 1024)]) == "reduce-overhead"
    assert default_mode("cuda:1", [(CUDA_GRAPH_MAX_BATCH, 1024), (1, 512)]) == "reduce-overhead"
    assert default_mode("cuda", [(1, 1024), (CUDA_GRAPH_MAX_BATCH + 1, 1024)]) == "default"
    assert default_mode("cpu", [(1, 64)]) == "default"


@pytest.mark.slow
def test_a_cpu_engine_names_the_mode_it_compiled_with(compiled):
    engine, _ = compiled
    assert "mode=default" in engine.describe()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_batch_1_engine_runs_cuda_graphs_and_equals_eager(tiny, batch):
    """Each call's output is its own (cloned out of the graph's buffer): it survives the next call, whose input
    differs. Against CPU eager within 1e-3: the GPU's fp32 convolutions take TF32 (2.2e-4 on an H200)."""
    model, preset = tiny
    mel, valid = batch
    engine = build_engine(model, preset, backend="inductor", precision="fp32", device="cuda", shapes=[(1, 64)])
    eager = build_engine(model, preset, backend="eager")
    assert "mode=reduce-overhead" in engine.describe()
    first = engine(mel[:1].cuda(), valid[:1].cuda())
    second = engine(mel[1:].cuda(), valid[1:].cuda())
    assert rel_l2(first.cpu(), eager(mel[:1], valid[:1])) <= 1e-3
    assert rel_l2(second.cpu(), eager(mel[1:], valid[1:])) <= 1e-3
    assert rel_l2(first.cpu(), second.cpu()) > 0.1


def test_a_thread_of_its_own_gets_its_own_cuda_graph_trees():
    """torch before 2.13 failed an assert when a thread other than the importing one called a CUDA-graph engine;
    the engine gives each calling thread its own trees (on a CPU: the bookkeeping only, no graph)."""
    import threading

    from torch._inductor import cudagraph_trees as trees

    from batchvoc.engines.inductor import _cuda_graph_trees_for_this_thread

    seen = {}

    def call():
        seen["before"] = torch._C._is_key_in_tls("tree_manager_containers")
        _cuda_graph_trees_for_this_thread()
        _cuda_graph_trees_for_this_thread()  # once per thread: the second call keeps the first's
        seen["after"] = torch._C._is_key_in_tls("tree_manager_containers")
        seen["trees"] = trees.get_obj(trees.local, "tree_manager_containers")
        seen["container"] = trees.get_container(0)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    assert (seen["before"], seen["after"]) == (False, True)
    assert seen["trees"] is not trees.get_obj(trees.local, "tree_manager_containers")  # not the main thread's
    assert seen["trees"][0] is seen["container"]
