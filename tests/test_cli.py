"""`python -m batchvoc` as users run it: real processes, a real local Ray each, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from tests.runner.test_driver import three_files

ROOT = Path(__file__).resolve().parent.parent


def batchvoc(*overrides: str, wait: bool = True, **kw):
    cmd = [sys.executable, "-m", "batchvoc", *overrides]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the session's own Ray token and temp dir (conftest)
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=kw.get("timeout", 300))


def test_v4_without_checkpoint_says_which_key_and_where(tmp_path):
    mel = tmp_path / "in"
    three_files(mel, rows=3)
    result = batchvoc("job=v4_fp16", f"input.manifest={mel}", f"output.dir={tmp_path / 'out'}")
    assert result.returncode == 1
    assert "model.checkpoint" in result.stderr and "huggingface.co/lj1995/GPT-SoVITS" in result.stderr
    assert not (tmp_path / "out" / "wavs").exists()


def test_tensorrt_without_the_extra_names_it(tmp_path):
    pytest.importorskip("torch")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    three_files(tmp_path / "in", rows=3)
    result = batchvoc("job=hifigan_v1", f"input.manifest={tmp_path / 'in'}", f"output.dir={tmp_path / 'out'}",
                      "engine.backend=tensorrt")  # fmt: skip
    assert result.returncode == 1 and "engine.backend" in result.stderr and "batchvoc[tensorrt]" in result.stderr


def test_demo_makes_real_audio(tmp_path):
    out = tmp_path / "demo"
    result = batchvoc("job=demo", f"output.dir={out}", "demo.utterances=3", "demo.seconds=1.0")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_ok"] == 3 and summary["rows_failed"] == 0
    wavs = sorted((out / "wavs").rglob("*.wav"))
    assert len(wavs) == 3
    for path in wavs:
        audio, rate = sf.read(path)
        assert rate == 22050 and audio.size > 0.7 * rate
        assert np.sqrt(np.mean(audio**2)) > 0.01  # not silent
    assert "3 rows ok, 0 failed" in result.stdout


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_interrupted_job_finishes_on_rerun_without_duplicates(tmp_path, how):
    rows = three_files(tmp_path / "in", rows=200, seed=1)
    out = tmp_path / "out"
    args = ("job=hifigan_v1", f"input.manifest={tmp_path / 'in'}", f"output.dir={out}", "model.checkpoint=random",
            "+model.hparams.upsample_initial_channel=128", "engine.backend=eager", "cluster.cpu_actors=2",
            "input.shard_seconds=0.5", "engine.batch=2", "engine.window=16")  # fmt: skip
    proc = batchvoc(*args, wait=False)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((out / "manifest").glob("*.parquet"))) < 3:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    done_then = len(list((out / "manifest").glob("*.parquet")))
    proc.send_signal(signal.SIGINT if how == "SIGINT" else signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    time.sleep(2)  # let a killed driver's workers go
    finished = {p: p.stat().st_mtime_ns for p in (out / "wavs").rglob("*.wav")}
    total_shards = json.loads(json.dumps(len(list((out / "manifest").glob("*.parquet")))))
    assert 3 <= done_then <= total_shards

    result = batchvoc(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    table = [r for p in sorted((out / "manifest").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert sorted(r["id"] for r in table) == sorted(r["id"] for r in rows)  # every id exactly once
    assert all(r["status"] == "ok" for r in table)
    on_disk = {p.relative_to(out).as_posix() for p in (out / "wavs").rglob("*.wav")}
    assert on_disk == {r["path"] for r in table}
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]
    rewritten = [p for p, mtime in finished.items() if p.stat().st_mtime_ns != mtime]
    assert not rewritten, rewritten[:3]
    for r in table[::20]:
        assert sf.info(out / r["path"]).frames == r["n_samples"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_ok"] == 200 and summary["shards_skipped"] >= 3


def test_v3_bf16_runs_an_nvidia_checkpoint_folder_end_to_end(tmp_path):
    """job=v3_bf16 with a small random BigVGAN v2 saved the way NVIDIA publishes it (config.json + generator)."""
    import torch

    from batchvoc.models.bigvgan import BigVGAN, hparams_from_config
    from tests.checkpoints import write_nvidia_folder
    from tests.conftest import mel_rows, write_manifest
    from tests.models.test_bigvgan import CONFIG_24K

    config = dict(CONFIG_24K, upsample_initial_channel=64)
    torch.manual_seed(3)
    write_nvidia_folder(BigVGAN.from_hparams(**hparams_from_config(config)), config, tmp_path / "ckpt")
    write_manifest(tmp_path / "in" / "m.parquet", mel_rows(3, 100, frames=[12, 30, 7]))
    out = tmp_path / "out"
    result = batchvoc("job=v3_bf16", f"model.checkpoint={tmp_path / 'ckpt'}", f"input.manifest={tmp_path / 'in'}",
                      f"output.dir={out}", "engine.backend=eager", "engine.batch=2")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    table = [r for p in (out / "manifest").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert sorted(r["n_samples"] for r in table) == [7 * 256, 12 * 256, 30 * 256]
    assert {r["sample_rate"] for r in table} == {24000}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["precision"] == "bf16" and summary["rows_ok"] == 3
