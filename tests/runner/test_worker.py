"""The shard pipeline without Ray: a real (small) HiFi-GAN, real Parquet in, real audio files out."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch

from batchvoc.engines import cache
from batchvoc.engines.cache import weights_digest
from batchvoc.manifest import find_manifest_files, plan_shards
from batchvoc.models import load_vocoder
from batchvoc.runner.worker import Worker, model_from_weights, preload, weights_of
from batchvoc.settings import JobSettings
from tests.conftest import mel_rows, write_manifest
from tests.jobs import small_job


def settings(tmp_path, manifest, **kw) -> JobSettings:
    base = dict(manifest=str(manifest), batch=3, window=24, subtype="FLOAT", job_token="tok1")
    return small_job(tmp_path, **{**base, **kw})


def test_shard_output_equals_whole_utterance_model_output(tmp_path):
    rows = mel_rows(7, 80, frames=[5, 40, 1, 77, 13, 24, 30])
    manifest = write_manifest(tmp_path / "in" / "m.parquet", rows, row_group_size=3)
    s = settings(tmp_path, manifest)
    (shard,) = plan_shards(find_manifest_files(manifest), 10**9)
    stats = Worker(s).run(shard)
    model, preset = load_vocoder(s.preset, s.checkpoint, s.hparams)
    table = pq.read_table(s.out_path / "manifest" / f"{shard.name}.parquet").to_pylist()
    assert [r["id"] for r in table] == [r["id"] for r in rows]
    for row, out in zip(rows, table, strict=True):
        mel = torch.from_numpy(row["mel"].reshape(80, row["n_frames"]))[None]
        with torch.inference_mode():
            want = model(mel)[0, 0].numpy()
        got, rate = sf.read(s.out_path / out["path"], dtype="float32")
        assert rate == 22050 and out["status"] == "ok" and out["n_samples"] == row["n_frames"] * 256
        assert np.abs(got - want).max() <= 1e-5, out["id"]
        assert out["speaker"] == row["speaker"]
    on_disk = json.loads((s.out_path / "stats" / f"{shard.name}.json").read_text())
    assert on_disk == stats
    assert stats["rows_ok"] == 7 and stats["backend"] == "eager" and stats["chunk"] == 24
    assert stats["frames"] == sum(r["n_frames"] for r in rows)


def test_bad_rows_become_error_rows_and_good_rows_survive(tmp_path):
    rows = mel_rows(6, 80, frames=8)
    rows[1]["n_mels"], rows[1]["mel"], rows[1]["n_frames"] = 100, np.zeros(800, np.float32), 8
    rows[2]["mel"] = rows[2]["mel"].copy()
    rows[2]["mel"][5] = np.nan
    rows[3]["n_frames"], rows[3]["mel"] = 0, np.zeros(0, np.float32)
    rows[4]["id"] = "../x"
    manifest = write_manifest(tmp_path / "in" / "m.parquet", rows)
    s = settings(tmp_path, manifest)
    (shard,) = plan_shards(find_manifest_files(manifest), 10**9)
    stats = Worker(s).run(shard)
    table = pq.read_table(s.out_path / "manifest" / f"{shard.name}.parquet").to_pylist()
    assert [r["status"] for r in table] == ["ok", "error", "error", "error", "error", "ok"]
    assert all(r["error"] for r in table if r["status"] == "error")
    assert stats["rows_failed"] == 4 and stats["rows_ok"] == 2
    assert sorted(p.name for p in (s.out_path / "audio").rglob("*.wav")) == ["utt_0000.wav", "utt_0005.wav"]
    assert not (tmp_path / "x.wav").exists()


def test_interrupted_shard_reuses_finished_audio(tmp_path):
    rows = mel_rows(4, 80, frames=10)
    manifest = write_manifest(tmp_path / "in" / "m.parquet", rows)
    s = settings(tmp_path, manifest)
    (shard,) = plan_shards(find_manifest_files(manifest), 10**9)
    worker = Worker(s)
    worker.run(shard)
    # as if the run had died before its manifest: one leftover temp file, two finished audio files
    (s.out_path / "manifest" / f"{shard.name}.parquet").unlink()
    for r in rows[2:]:
        (s.out_path / "audio" / shard.name / f"{r['id']}.wav").unlink()
    kept = s.out_path / "audio" / shard.name / "utt_0000.wav"
    before = kept.stat().st_mtime_ns
    folder = s.out_path / "audio" / shard.name
    (folder / f".utt_0002.wav.partial-{s.job_token}-1-2").write_bytes(b"partial")  # this job's earlier attempt
    other_job = folder / ".utt_0003.wav.partial-otherjob-1-2"
    other_job.write_bytes(b"another job's")
    worker.run(shard)
    assert kept.stat().st_mtime_ns == before  # not written twice
    assert [p.name for p in s.out_path.rglob("*.partial-*")] == [other_job.name]  # never another job's file
    table = pq.read_table(s.out_path / "manifest" / f"{shard.name}.parquet").to_pylist()
    assert [r["status"] for r in table] == ["ok"] * 4
    assert table[0]["n_samples"] == 10 * 256


@pytest.mark.parametrize("preset", ["hifigan_v1_universal", "gsv_v4", "bigvgan_v2_24khz_100band_256x"])
def test_actor_model_from_shared_weights_equals_the_drivers_and_keeps_its_digest(preset):
    model, p = load_vocoder(preset, "random")
    shared = weights_of(model)
    assert shared.digest == weights_digest(model)
    copy = model_from_weights(p, shared)
    got, want = copy.state_dict(), model.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in want)
    assert all(not t.is_meta for t in got.values()) and not copy.training
    assert weights_digest(copy) == shared.digest  # handed over, not hashed again
    assert cache._DIGESTS[copy][1] == shared.digest
    with torch.no_grad():  # a change to the copy's weights makes it hash them
        next(copy.parameters()).view(-1)[0] += 1.0
    assert weights_digest(copy) != shared.digest


def test_preload_imports_an_installed_module_and_skips_a_missing_one_quietly():
    thread = preload("json")
    assert thread is not None
    thread.join(timeout=30)
    assert preload("batchvoc_no_such_module") is None  # no thread, so no traceback from one (pandas is optional)


SKELETONS_IN_CHILD = """
import sys
from batchvoc.models.presets import PRESETS, load_presets
from batchvoc.runner.worker import skeleton

load_presets()
for name in sorted(PRESETS):
    model = skeleton(PRESETS[name])
    assert all(t.is_meta for t in model.state_dict().values()), name
    if "torch._dynamo" in sys.modules:
        print("torch._dynamo imported by", name)
        break
print(len(PRESETS), "presets")
"""


def test_an_actors_model_skeleton_never_imports_dynamo():
    """Issue 14 (actor ready): every preset's skeleton (model_from_weights's meta-device model) is built on torch's
    C++ meta kernels; one of torch's Python references there (normal_, arithmetic on a meta tensor) imports
    torch._dynamo, ~1-3 s of each actor's start, though an aoti package never needs it."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", SKELETONS_IN_CHILD], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[1:] == ["presets"], done.stdout
