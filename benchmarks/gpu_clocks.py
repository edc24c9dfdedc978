"""GPU clocks and power while a command runs: whether a benchmark's GPU is held back by its power cap.

    python3 benchmarks/gpu_clocks.py OUT.csv -- python3 -m batchvoc.bench preset=gsv_v4 batch=[16] ...
    python3 benchmarks/gpu_clocks.py OUT.csv [--query FIELDS] [--interval MS]   # summarise a sampling made before

Samples `nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,power.limit,temperature.gpu` (GPU --gpu, every
--interval ms) into OUT.csv while the command runs, then prints each busy phase: a run of samples above --busy-watts
less its first and last (taken as the work starts or ends), at least --min-samples long, with its length, mean and
lowest SM clock, mean power against the limit and the temperature. A compiled engine's bench line is one such phase
(2 warm-up and 10 timed runs; builds in between idle). H200 session 26 (BENCHMARKS.md): gsv_v4's compiled fp16
engine ran at the 700 W cap, its SM clock 1,549-1,628 MHz on average against 1,980 MHz unloaded, so its speed is
set by the energy a forward takes as well as by its time.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

QUERY = "timestamp,clocks.sm,power.draw,power.limit,temperature.gpu"
FIELDS = {"clocks.sm": "clock_mhz", "power.draw": "power_w", "power.limit": "limit_w", "temperature.gpu": "temp_c"}


@dataclass(frozen=True)
class Sample:
    clock_mhz: float
    power_w: float
    limit_w: float = float("nan")  # nan: not sampled
    temp_c: float = float("nan")


@dataclass(frozen=True)
class Phase:
    samples: int
    clock_mhz: float  # mean
    lowest_mhz: float
    power_w: float  # mean
    limit_w: float
    temps_c: tuple[float, float]  # first, last

    def line(self, interval_ms: int) -> str:
        limit = "" if math.isnan(self.limit_w) else f" / {self.limit_w:.0f}"
        return (f"{self.samples * interval_ms / 1000:6.1f} s  SM clock {self.clock_mhz:5.0f} MHz mean, "
                f"{self.lowest_mhz:5.0f} lowest  power {self.power_w:4.0f}{limit} W  "
                f"{self.temps_c[0]:.0f} -> {self.temps_c[1]:.0f} C")  # fmt: skip


def read_samples(path: Path, query: str = QUERY) -> list[Sample]:
    """path's rows as nvidia-smi wrote them for `query` (its --query-gpu fields, in order; csv,noheader, with or
    without units: "1980 MHz" or 1980); it must hold clocks.sm and power.draw. Rows nvidia-smi could not fill
    ([N/A]) are skipped. Raises ValueError for a query without those two fields."""
    names = [q.strip() for q in query.split(",")]
    if not {"clocks.sm", "power.draw"} <= set(names):
        raise ValueError(f"the sampling's fields {names} lack clocks.sm or power.draw")
    samples = []
    for row in csv.reader(path.read_text().splitlines()):
        try:
            values = {FIELDS[n]: float(v.split()[0]) for n, v in zip(names, row, strict=True) if n in FIELDS}
        except (ValueError, IndexError):  # [N/A], a row cut short by the sampler's end
            continue
        samples.append(Sample(**values))
    return samples


def busy_phases(samples: list[Sample], busy_watts: float, min_samples: int) -> list[Phase]:
    """Runs of consecutive samples drawing more than busy_watts, less their first and last sample (taken while the
    work starts or ends: a clock or temperature of neither state), that keep at least min_samples."""
    phases, run = [], []
    for s in [*samples, None]:
        if s is not None and s.power_w > busy_watts:
            run.append(s)
            continue
        run = run[1:-1]
        if len(run) >= min_samples:
            phases.append(Phase(len(run), sum(r.clock_mhz for r in run) / len(run), min(r.clock_mhz for r in run),
                                sum(r.power_w for r in run) / len(run), run[0].limit_w,
                                (run[0].temp_c, run[-1].temp_c)))  # fmt: skip
        run = []
    return phases


def sample_while(command: list[str], out: Path, gpu: int, interval_ms: int) -> int:
    """Run command with nvidia-smi sampling into out; the command's exit code. SystemExit without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        sys.exit("gpu_clocks.py: nvidia-smi is not on PATH (sampling needs a machine with an NVIDIA GPU)")
    with out.open("w") as sink:
        sampler = subprocess.Popen(["nvidia-smi", f"--id={gpu}", f"--query-gpu={QUERY}",
                                    "--format=csv,noheader,nounits", f"-lms={interval_ms}"], stdout=sink)  # fmt: skip
        try:
            return subprocess.call(command)
        finally:
            sampler.terminate()
            sampler.wait(timeout=30)


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    argv, command = argv[:split], argv[split + 1 :]  # after "--": the command to run (none: summarise OUT.csv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     usage="%(prog)s OUT.csv [options] [-- COMMAND ...]")  # fmt: skip
    parser.add_argument("out", type=Path, help="the sampling: written while COMMAND runs, else read")
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--interval", type=int, default=250, help="ms between samples")
    parser.add_argument("--busy-watts", type=float, default=500.0)
    parser.add_argument("--min-samples", type=int, default=6)
    parser.add_argument("--query", default=QUERY, help="the fields of a sampling made before, as nvidia-smi's "
                        "--query-gpu took them (e.g. clocks.sm,power.draw,temperature.gpu)")  # fmt: skip
    args = parser.parse_args(argv)
    code = sample_while(command, args.out, args.gpu, args.interval) if command else 0
    if not args.out.is_file():
        sys.exit(f"gpu_clocks.py: no sampling at {args.out}")
    query = QUERY if command else args.query
    samples = read_samples(args.out, query)
    if not samples and args.out.stat().st_size:
        sys.exit(f"gpu_clocks.py: no row of {args.out} has the {len(query.split(','))} fields of --query {query!r}; "
                 "name the fields the sampling was made with")  # fmt: skip
    phases = busy_phases(samples, args.busy_watts, args.min_samples)
    print(f"{len(phases)} busy phases (> {args.busy_watts:.0f} W for >= {args.min_samples} samples) in {args.out}:")
    for phase in phases:
        print("  " + phase.line(args.interval))
    sys.exit(code)


if __name__ == "__main__":
    main()
