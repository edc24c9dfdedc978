"""benchmarks/gpu_clocks.py: busy phases out of an nvidia-smi sampling (clocks.sm, power.draw per sample)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_clocks.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_clocks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _sampling(path: Path) -> None:
    """Idle, a blip, a capped phase (clocks down) between the samples of its start and end, idle, a [N/A] row, an
    uncapped phase between its own edge samples (the file ends in it)."""
    rows = [(1980, 124, 40)] * 3 + [(1980, 600, 45)] * 3 + [(1980, 124, 41)]
    rows += [(1980, 520, 45), (1350, 690, 55), (1600, 695, 58), (1700, 688, 60), (1650, 692, 61), (1965, 554, 49)]
    rows += [(1980, 130, 50)] * 2 + [(1980, 510, 50), (1980, 650, 54), (1965, 655, 55), (1980, 660, 56)]
    rows += [(1900, 530, 52)]
    lines = [f"2026/12/03 12:14:{i:02d}.000, {c}, {p:.2f}, 700.00, {t}" for i, (c, p, t) in enumerate(rows)]
    lines.insert(15, "2026/12/03 12:14:99.000, [N/A], [N/A], 700.00, 55")
    path.write_text("\n".join(lines) + "\n")


def test_busy_phases_are_runs_of_samples_over_the_threshold_less_their_edges(tmp_path):
    gpu_clocks = _module()
    _sampling(tmp_path / "clocks.csv")
    samples = gpu_clocks.read_samples(tmp_path / "clocks.csv")
    assert len(samples) == 20  # the [N/A] row skipped
    capped, uncapped = gpu_clocks.busy_phases(samples, busy_watts=500, min_samples=3)
    assert (capped.samples, capped.clock_mhz, capped.lowest_mhz) == (4, 1575.0, 1350.0)
    assert capped.power_w == pytest.approx(691.25) and capped.temps_c == (55.0, 61.0)
    assert (uncapped.samples, uncapped.clock_mhz, uncapped.limit_w) == (3, 1975.0, 700.0)
    assert len(gpu_clocks.busy_phases(samples, busy_watts=500, min_samples=4)) == 1  # 3 samples left of 5


def test_a_sampling_with_units_and_other_fields_reads_the_same(tmp_path):
    """`nvidia-smi --format=csv,noheader` writes units ("1980 MHz"); --query names the fields it sampled."""
    gpu_clocks = _module()
    path = tmp_path / "clocks.csv"
    path.write_text("1980 MHz, 524.50 W, 40\n1350 MHz, 690.00 W, 55\n[N/A], [N/A], 55\n1600 MHz, 696.00 W, 58\n"
                    "1900 MHz, 600.00 W, 50\n")  # fmt: skip
    samples = gpu_clocks.read_samples(path, "clocks.sm,power.draw,temperature.gpu")
    read = [(s.clock_mhz, s.power_w, s.temp_c) for s in samples]
    assert read == [(1980, 524.5, 40), (1350, 690, 55), (1600, 696, 58), (1900, 600, 50)]
    (phase,) = gpu_clocks.busy_phases(samples, busy_watts=500, min_samples=2)
    assert phase.clock_mhz == 1475 and "/" not in phase.line(500)  # no limit sampled
    with pytest.raises(ValueError, match="lack clocks.sm or power.draw"):
        gpu_clocks.read_samples(path, "timestamp,temperature.gpu")


def test_the_script_summarises_a_sampling_made_before(tmp_path):
    _sampling(tmp_path / "clocks.csv")
    run = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "clocks.csv"), "--min-samples", "3"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "2 busy phases" in run.stdout and "1575 MHz mean" in run.stdout and "691 / 700 W" in run.stdout
    two_fields = ["--query", "clocks.sm,power.draw"]  # the file has five per row
    wrong = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "clocks.csv"), *two_fields],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert wrong.returncode != 0 and "no row of" in wrong.stderr and "name the fields" in wrong.stderr


def test_sampling_without_nvidia_smi_says_so(tmp_path):
    if shutil.which("nvidia-smi") is not None:
        pytest.skip("this machine has nvidia-smi")
    run = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "c.csv"), "--", "true"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode != 0 and "nvidia-smi is not on PATH" in run.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="needs nvidia-smi (a machine with an NVIDIA GPU)")
def test_the_script_samples_while_a_command_runs(tmp_path):
    out = tmp_path / "clocks.csv"
    command = [sys.executable, "-c", "import time; time.sleep(2)"]
    run = subprocess.run([sys.executable, str(SCRIPT), str(out), "--interval", "100", "--", *command],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert len(_module().read_samples(out)) >= 5
