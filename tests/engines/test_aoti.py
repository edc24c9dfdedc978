"""AOTInductor packages on the CPU: equal to eager, built once under a lock, loaded from the cache after that."""

from __future__ import annotations

import multiprocessing
import os

import pytest
import torch

from batchvoc.engines import aoti_available, build_engine
from tests.engines.conftest import rel_l2

SHAPE = (2, 64)

pytestmark = pytest.mark.skipif(not aoti_available()[0], reason=f"aoti unavailable: {aoti_available()[1]}")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("aoti-cache")


@pytest.fixture(scope="module")
def built(tiny, cache):
    """The first engine: builds the package (a C++ compile, ~30 s on 2 CPU cores)."""
    model, preset = tiny
    return build_engine(model, preset, backend="aoti", precision="fp32", shapes=[SHAPE], cache_dir=cache)


@pytest.mark.slow
def test_aoti_equals_eager_and_says_it_was_built(built, tiny, batch):
    model, preset = tiny
    mel, valid = batch
    eager = build_engine(model, preset, backend="eager")
    assert (built.backend, built.precision, built.shapes, built.load_path) == ("aoti", "fp32", [SHAPE], "built")
    for spans in (valid, torch.tensor([[0, 10], [20, 64]]), None):
        assert rel_l2(built(mel, spans), eager(mel, spans)) <= 1e-5
    with pytest.raises(ValueError, match="built for"):
        built(mel[:, :, :32], valid)


@pytest.mark.slow
def test_second_build_loads_the_package(built, tiny, cache, batch):
    model, preset = tiny
    mel, valid = batch
    packages = list((cache / "aoti").glob("*.pt2"))
    assert len(packages) == 1 and packages[0].name.startswith("tiny-fp32-2x64-")
    again = build_engine(model, preset, backend="aoti", precision="fp32", shapes=[SHAPE], cache_dir=cache,
                         cuda_graphs=True)  # fmt: skip
    assert again.load_path == "loaded" and "cuda_graphs" not in again.describe()  # a CPU has none
    assert torch.equal(again(mel, valid), built(mel, valid))
    assert list((cache / "aoti").glob("*.pt2")) == packages  # nothing rebuilt, no temp files left


@pytest.mark.slow
def test_the_package_keeps_its_weights_apart_each_a_tensor_of_its_own(built, tiny, cache):
    """Compiled into the .so, a package's weights share one allocation at 64-byte steps (slower convolutions on a
    GPU); kept as files they load as tensors of their own, the model's values, and the engine runs on them."""
    from batchvoc.engines.aoti import package_weights

    model, _ = tiny
    (package,) = (cache / "aoti").glob("*.pt2")
    weights = package_weights(package, torch.device("cpu"))
    params = dict(model.named_parameters())
    assert weights and set(weights) <= set(params) | {n for n, _ in model.named_buffers()}
    assert len({w.untyped_storage().data_ptr() for w in weights.values()}) == len(weights)
    for name, w in weights.items():
        if name in params:
            assert torch.equal(w, params[name].detach()), name


@pytest.mark.slow
def test_a_process_finding_the_lock_held_says_it_waits_then_loads(built, tiny, cache, caplog):
    import logging
    import threading
    import time

    from filelock import FileLock

    model, preset = tiny
    (package,) = (cache / "aoti").glob("*.pt2")
    held = FileLock(f"{package}.lock")
    held.acquire(timeout=0)  # as another process building it would
    engines = []
    with caplog.at_level(logging.INFO, logger="batchvoc.engines.aoti"):
        worker = threading.Thread(target=lambda: engines.append(build_engine(
            model, preset, backend="aoti", precision="fp32", shapes=[SHAPE], cache_dir=cache)))  # fmt: skip
        worker.start()
        deadline = time.monotonic() + 30
        while "waiting for another process building" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "waiting for another process building" in caplog.text
        assert not engines  # still waiting
        held.release()
        worker.join(timeout=120)
    assert engines and engines[0].load_path == "loaded"
    free = FileLock(f"{package}.lock")
    free.acquire(timeout=0)  # and the lock is free again
    free.release()


@pytest.mark.slow
def test_other_weights_get_their_own_package(built, tiny, cache, batch):
    model, preset = tiny
    other = type(model)(**preset.hparams).eval()
    engine = build_engine(other, preset, backend="aoti", precision="fp32", shapes=[SHAPE], cache_dir=cache)
    assert engine.load_path == "built"
    assert len(list((cache / "aoti").glob("*.pt2"))) == 2
    mel, valid = batch
    assert rel_l2(engine(mel, valid), build_engine(other, preset, backend="eager")(mel, valid)) <= 1e-5


@pytest.mark.slow
def test_a_corrupt_package_is_rebuilt(built, tiny, cache, batch):
    model, preset = tiny
    for package in (cache / "aoti").glob("*.pt2"):
        package.write_bytes(b"not a zip")
    engine = build_engine(model, preset, backend="aoti", precision="fp32", shapes=[SHAPE], cache_dir=cache)
    assert engine.load_path == "built"
    mel, valid = batch
    assert torch.equal(engine(mel, valid), built(mel, valid))


def _build_in_child(cache, queue):
    from batchvoc.engines import build_engine as build
    from tests.engines.conftest import tiny_model

    model, preset = tiny_model()
    engine = build(model, preset, backend="aoti", precision="fp32", shapes=[(1, 32)], cache_dir=cache)
    queue.put((os.getpid(), engine.load_path))


@pytest.mark.slow
def test_two_processes_build_one_package(tmp_path):
    """Two processes ask for the same new package at once: one builds it under the lock, the other loads it."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build_in_child, args=(str(tmp_path), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    assert all(p.exitcode == 0 for p in procs)
    paths = sorted(queue.get(timeout=5)[1] for _ in procs)
    assert paths == ["built", "loaded"]
    assert len(list((tmp_path / "aoti").glob("*.pt2"))) == 1


def test_package_path_follows_the_cache_setting(monkeypatch, tmp_path):
    from batchvoc.engines.aoti import package_path

    assert package_path(tmp_path, "k") == tmp_path / "aoti" / "k.pt2"
    monkeypatch.setenv("BATCHVOC_CACHE", str(tmp_path / "env"))
    assert package_path(None, "k") == tmp_path / "env" / "aoti" / "k.pt2"


def test_a_plan_of_packages_takes_the_options_that_only_change_how_a_package_runs(tiny, tmp_path):
    """cuda_graphs and cudnn_benchmark (a job's settings hold cuda_graphs=false) neither fail the plan
    `python -m batchvoc.build` makes nor change its keys; a rewrite does."""
    from batchvoc.engines.aoti import plan_packages

    model, preset = tiny
    plain = plan_packages(model, preset, "fp32", "cpu", [SHAPE], tmp_path)
    assert plan_packages(model, preset, "fp32", "cpu", [SHAPE], tmp_path, cuda_graphs=False,
                         cudnn_benchmark=True) == plain  # fmt: skip
    assert plan_packages(model, preset, "fp32", "cpu", [SHAPE], tmp_path, layout="channels_last_2d") != plain


LOAD_IN_CHILD = """
import sys, torch
from batchvoc.engines import build_engine
from tests.engines.conftest import tiny_model

model, preset = tiny_model()
engine = build_engine(model, preset, backend="aoti", precision="fp32", shapes=[(1, 32)], cache_dir=sys.argv[1],
                      resblocks="fused")
mel = torch.linspace(-6, 1, 1 * preset.n_mels * 32).reshape(1, preset.n_mels, 32)
torch.save(engine(mel, torch.tensor([[0, 32]])), sys.argv[2])
defined = ["lrelu_conv"] if hasattr(torch.ops.batchvoc, "lrelu_conv") else []
print(engine.load_path, *defined, *(m for m in ("torch._dynamo", "torch._inductor") if m in sys.modules))
"""


@pytest.mark.slow
def test_a_loaded_package_needs_neither_our_operators_nor_the_compiler(tmp_path):
    """A package of a model with batchvoc's operators (fused resblocks; on a CPU their plain-torch path is compiled
    in) is loaded and run in a fresh process that neither defines those operators nor imports torch._dynamo or
    torch._inductor (seconds of every actor's start), and gives the building process's output."""
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    runs = [subprocess.run([sys.executable, "-c", LOAD_IN_CHILD, str(tmp_path), str(tmp_path / f"{i}.pt")],
                           capture_output=True, text=True, env=env, timeout=600) for i in range(2)]  # fmt: skip
    built = ["built", "lrelu_conv", "torch._dynamo", "torch._inductor"]
    assert [r.stdout.split() for r in runs] == [built, ["loaded"]], runs
    assert torch.equal(torch.load(tmp_path / "0.pt"), torch.load(tmp_path / "1.pt"))


def test_packages_with_our_kernels_are_keyed_by_their_source(tiny, monkeypatch):
    """A package compiles our operators' kernels in: other kernel source, another key (only where they are used)."""
    from batchvoc.engines import aoti
    from batchvoc.engines.layout import Rewrites

    model, preset = tiny
    assert len(aoti.kernels_digest()) == 16
    keys = {}
    for source in ("v1", "v2"):
        monkeypatch.setattr(aoti, "kernels_digest", lambda source=source: source)
        for rewrites in (Rewrites(), Rewrites(resblocks="fused"), Rewrites(antialias="fused1g")):
            keys[source, rewrites.key()["resblocks"], rewrites.key()["antialias"]] = aoti.package_key(
                model, preset, "fp32", SHAPE, "cpu", rewrites)  # fmt: skip
    assert keys["v1", "conv", "conv"] == keys["v2", "conv", "conv"]
    assert keys["v1", "fused", "conv"] != keys["v2", "fused", "conv"]
    assert keys["v1", "conv", "fused1g"] != keys["v2", "conv", "fused1g"]


@pytest.mark.slow
def test_an_opaque_package_calls_our_operators_back(tiny, tmp_path):
    """kernels="opaque": the package keeps our operators as calls (its own key), with the traced package's output."""
    import zipfile

    model, preset = tiny
    mel = torch.linspace(-6, 1, preset.n_mels * 32).reshape(1, preset.n_mels, 32)
    out, calls = {}, {}
    for kernels in ("traced", "opaque"):
        folder = tmp_path / kernels
        engine = build_engine(model, preset, backend="aoti", precision="fp32", shapes=[(1, 32)], cache_dir=folder,
                              resblocks="fused", kernels=kernels)  # fmt: skip
        out[kernels] = engine(mel, torch.tensor([[0, 32]]))
        (package,) = (folder / "aoti").glob("*.pt2")
        with zipfile.ZipFile(package) as z:
            calls[kernels] = any(b"batchvoc::lrelu_conv" in z.read(n) for n in z.namelist() if n.endswith(".json"))
        assert f"kernels={kernels}" in engine.details
    assert calls == {"traced": False, "opaque": True}
    torch.testing.assert_close(out["opaque"], out["traced"], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="unknown kernels"):
        build_engine(model, preset, backend="aoti", shapes=[(1, 32)], cache_dir=tmp_path, kernels="inlined")


class _Unexportable(torch.nn.Module):
    def forward(self, mel, valid):
        raise ValueError("this model cannot be traced")


def test_a_failed_build_is_not_tried_again_by_the_next_process_for_a_while(tmp_path):
    """The first build fails and leaves its note; the next caller fails at once with that error (on a node of many
    GPUs the waiting actors would otherwise build and fail in turn); once the note is old, building is tried again."""
    from batchvoc.engines import aoti

    made = []

    def make_net():
        made.append(1)
        return _Unexportable()

    path = tmp_path / "aoti" / "k.pt2"
    example = (torch.zeros(1, 4, 8), torch.zeros(1, 2, 8, dtype=torch.int64))
    with pytest.raises(Exception, match="cannot be traced"):
        aoti.get_package(make_net, example, path, torch.device("cpu"), {})
    note = tmp_path / "aoti" / "k.pt2.failed"
    assert len(made) == 1 and "cannot be traced" in note.read_text()
    with pytest.raises(RuntimeError, match=r"failed in another process \d+ s ago: .*cannot be traced"):
        aoti.get_package(make_net, example, path, torch.device("cpu"), {})
    assert len(made) == 1  # not built again
    old = note.stat().st_mtime - aoti.FAILED_TTL_S - 1
    os.utime(note, (old, old))
    with pytest.raises(Exception, match="cannot be traced"):
        aoti.get_package(make_net, example, path, torch.device("cpu"), {})
    assert len(made) == 2
