"""python -m batchvoc.bench end to end on the CPU with a toy-sized gsv_v4 (real model code, random weights)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from batchvoc.bench import CONF, run_bench, table
from batchvoc.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
TOY = ["preset=gsv_v4", "hparams={upsample_initial_channel:32}", "frames=150", "utterances=3", "device=cpu",
       "warmup=1"]  # fmt: skip


def config(*overrides: str):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("bench", overrides=[*TOY, *overrides])


def test_bench_reports_every_line_against_fp32_eager(tmp_path):
    out = tmp_path / "bench.json"
    cfg = config("backends=[eager]", "precisions=[fp32,bf16,fp16]", "batch=[1,2]", "whole=true", "window=40",
                 f"out={out}")  # fmt: skip
    report = run_bench(cfg)
    assert json.loads(out.read_text()) == json.loads(json.dumps(report, default=str))
    lines = report["results"]
    # per mode and batch: the fp32 eager baseline, then bf16 and fp16 (fp16 runs in fp32 on the CPU)
    assert [(r["mode"], r["batch"], r["requested"]) for r in lines] == [
        (mode, b, req) for mode in ("chunked", "whole") for b in (1, 2)
        for req in ("eager/fp32", "eager/bf16", "eager/fp16")
    ]  # fmt: skip
    for r in lines:
        assert "error" not in r
        assert r["runs"] == 10 and r["x_realtime"] > 0 and r["peak_mem_mb"] is None
        assert r["audio_s"] == pytest.approx(3 * 150 * 480 / 48000)
        assert r["speedup"] == pytest.approx(r["x_realtime"] / lines[lines.index(r) // 3 * 3]["x_realtime"])
    base, bf16, fp16 = lines[:3]
    assert base["speedup"] == 1.0 and base["snr_db"] is None and base["rel_l2"] == 0
    assert bf16["precision"] == "bf16" and 20 < bf16["snr_db"] < 200
    assert fp16["precision"] == "fp32" and fp16["rel_l2"] == 0
    assert lines[0]["shape"] == [1, 40 + 2 * report["context"]] and lines[-1]["shape"] == [2, 150]
    assert report["context"] == 12 and report["window"] == 40
    assert "eager" in table(report)


def test_a_backend_with_options_keeps_the_table_aligned_and_warnings_name_the_benchs_keys(tmp_path, caplog):
    cfg = config("backends=[eager,'eager:cudnn_benchmark=true']", "precisions=[fp32]", "batch=[1]", "window=40",
                 f"out={tmp_path / 'b.json'}")  # fmt: skip
    with caplog.at_level("WARNING"):
        report = run_bench(cfg)
    assert "checkpoint=random: gsv_v4 gets random weights" in caplog.text and "model.checkpoint" not in caplog.text
    header, *rows = table(report).splitlines()[1:]
    assert [r.split()[1] for r in rows] == ["eager", "eager:cudnn_benchmark=true"]
    assert {row.index(" fp32 ") for row in rows} == {header.index(" prec ")}  # one column for every line


def test_bench_refuses_bad_config(tmp_path):
    with pytest.raises(ConfigError) as err:
        run_bench(config("backends=[tpu]", f"out={tmp_path / 'x.json'}"))
    assert err.value.key == "backends" and "unknown backend 'tpu'" in err.value.message
    with pytest.raises(ConfigError) as err:
        run_bench(config("backends=['inductor:kernels=bogus']", f"out={tmp_path / 'x.json'}"))
    assert err.value.key == "backends" and "engine.options.kernels: unknown value 'bogus'" in err.value.message
    with pytest.raises(ConfigError) as err:
        run_bench(config("precisions=[fp16,fp8]", f"out={tmp_path / 'x.json'}"))
    assert err.value.key == "precisions" and "unknown precision 'fp8'" in err.value.message
    with pytest.raises(ConfigError) as err:
        run_bench(config("repeats=3", f"out={tmp_path / 'x.json'}"))
    assert err.value.key == "repeats"
    assert not (tmp_path / "x.json").exists()


def test_bench_command_line(tmp_path):
    out = tmp_path / "cli.json"
    args = [*TOY, "backends=[eager]", "precisions=[fp32]", "batch=[2]", f"out={out}"]
    done = subprocess.run([sys.executable, "-m", "batchvoc.bench", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "x_rt" in done.stdout and json.loads(out.read_text())["results"][0]["backend"] == "eager"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.json"]  # nothing else written
    bad = subprocess.run([sys.executable, "-m", "batchvoc.bench", *args, "precisions=[fp8]"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 1 and "cannot run: precisions: unknown precision 'fp8'" in bad.stderr
