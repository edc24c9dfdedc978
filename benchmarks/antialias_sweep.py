"""GPU: time BigVGAN's anti-aliased Snake alone per tile (two-pass kernels "v1" and "pairs", one-pass methods) on
BigVGAN v2 24k's six stage shapes, in one run of under 3 minutes (issue 18).

    PYTHONPATH=. timeout 175 python3 benchmarks/antialias_sweep.py fp16 150 [--methods two_pass,gather] [--tiles N]

Shapes: 938 frames, batch 16, channels 768 .. 24 at 4 .. 256 samples per frame, channels-last, a per-frame span.
Each config (a method and its tile; the tables' own first, marked [table]) gets one line, printed once its six
stages are timed: ms per call per stage (do_bench median), the whole model's activation time per batch (18 per
stage, 1 more after the last) and its ratio to the tables' two-pass (the default). Two-pass configs add a line
each for their up and down kernels alone. The end: per stage the fastest config (ms, GB/s of the traffic its
kernels must move: two-pass 12 bytes per element of x, read x, write and read the 2x `a`, write y; one-pass 4),
then the best up and down tiles over the stages and the table entries to paste. err: max abs difference to the
tables' two-pass output over its max (pairs: 0, the same arithmetic). Compiles start at once in subprocesses
filling Triton's disk cache, one per config and group of stages sharing a kernel; nothing starts after `seconds`
(default 150) from launch; what was skipped is listed; exit 0.
"""

from __future__ import annotations

import time

LAUNCHED = time.time()  # the budget counts from here, imports included

# ruff: noqa: E402
import argparse
import math
import os
import sys
import tempfile
from collections import namedtuple
from functools import partial
from pathlib import Path
from subprocess import DEVNULL, Popen

import torch

from batchvoc.engines import fused_antialias as fa
from batchvoc.engines.fused_antialias import Tile, TwoPass
from batchvoc.engines.triton_runtime import pow2_between
from batchvoc.models.activations import SnakeBeta
from batchvoc.models.antialias import Activation1d

BATCH, FRAMES = 16, 938
STAGES = [(768, 4), (384, 16), (192, 32), (96, 64), (48, 128), (24, 256)]  # (channels, samples per frame)
T_, P_ = Tile, partial(TwoPass, "pairs")
CANDIDATES = {  # after the tables' own; registers, spills, occupancy on sm_90: benchmarks/antialias_ptxas.py
    "two_pass": [
        TwoPass("v1", T_(32, 64, 4), T_(32, 64, 4)),  # the table through H200 session 3
        P_(T_(32, 64, 8), T_(32, 64, 4), True), P_(T_(16, 128, 8), T_(16, 64, 2), True),
        P_(T_(32, 128, 8), T_(32, 128, 8), True), P_(T_(16, 64, 4), T_(32, 64, 4), True),
        TwoPass("v1", T_(16, 64, 4), T_(16, 64, 4)), TwoPass("v1", T_(32, 64, 8), T_(32, 64, 8)),
        P_(T_(16, 64, 4), T_(32, 64, 4)), P_(T_(8, 64, 4), T_(16, 64, 4)), P_(T_(16, 64, 8), T_(32, 64, 8)),
        P_(T_(16, 128, 8), T_(16, 128, 8)), P_(T_(32, 64, 8), T_(64, 64, 8)), P_(T_(8, 64, 2), T_(16, 64, 2)),
        P_(T_(8, 128, 4), T_(32, 128, 8)),
    ],
    "gather": [T_(64, 64, 8), T_(64, 32, 8), T_(64, 32, 4), T_(128, 32, 8)],
    "dot": [T_(64, 32, 4), T_(64, 64, 4)],
    "recompute": [T_(64, 32, 4)],
}  # fmt: skip
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
DEVICE = "cuda"
MAX_COMPILES = 24  # compile subprocesses at once
TRAFFIC = {"two_pass": 12, "gather": 4, "dot": 4, "recompute": 4}  # bytes per element of x (2-byte dtypes)
# step 1: a table's tile, 2: a candidate; group: the stages sharing its compiled kernels
Job = namedtuple("Job", "step stage dtype method tile group")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dtypes", nargs="?", default="fp16", help="fp16, bf16 or fp16,bf16 (default fp16)")
    p.add_argument("seconds", nargs="?", type=float, default=150.0, help="nothing starts after this, from launch")
    p.add_argument("--methods", default="two_pass,gather,dot", help="methods in order (default two_pass,gather,dot)")
    p.add_argument("--tiles", type=int, default=99, help="at most N candidate tiles per method (default all)")
    p.add_argument("--warm", help=argparse.SUPPRESS)  # a compile subprocess: job index:deadline:nice
    opt = p.parse_args(argv)
    opt.dtypes, opt.methods = opt.dtypes.split(","), [m for m in opt.methods.split(",") if m]
    for what, names, known in (("dtype", opt.dtypes, DTYPES), ("method", opt.methods, CANDIDATES)):
        if set(names) - set(known):
            p.error(f"unknown {what} {','.join(sorted(set(names) - set(known)))}; choose from {','.join(known)}")
    if "two_pass" not in opt.methods:
        opt.methods.insert(0, "two_pass")  # the reference and the baseline
    return opt


def table_tile(method: str) -> Tile | TwoPass:
    return fa.TWO_PASS_TILES[True] if method == "two_pass" else fa.ONE_PASS_TILES[(method, True)]


def channel_blocks(tile: Tile | TwoPass) -> tuple[int, ...]:
    return (tile.up.block_c, tile.down.block_c) if isinstance(tile, TwoPass) else (tile.block_c,)


def plan(opt: argparse.Namespace) -> list[Job]:
    """The jobs in the order they are timed: the tables' tiles over all stages, then the candidates, config by
    config. A job's group: the stages sharing its compiled kernels (Triton specializes integers on divisibility by
    16: channels, samples, rate; the channel block is the power of two covering the channels, at most the tile's)."""
    configs = [(1, m, table_tile(m)) for m in opt.methods]
    configs += [(2, m, t) for m in opt.methods for t in [t for t in CANDIDATES[m] if t != table_tile(m)][: opt.tiles]]
    jobs = []
    for dtype in opt.dtypes:
        for step, method, tile in configs:
            key = [(c % 16 == 0, FRAMES * r % 16 == 0, r % 16 == 0, c % 8 == 0,
                    tuple(pow2_between(c, 16, b) for b in channel_blocks(tile))) for c, r in STAGES]  # fmt: skip
            for i in range(len(STAGES)):
                group = tuple(j for j in range(len(STAGES)) if key[j] == key[i])
                jobs.append(Job(step, i, dtype, method, tile, group))
    return jobs


def model_ms(times: dict[int, float]) -> float:
    """A whole forward's activation time per batch from {stage: ms}: 18 per stage, one more after the last."""
    return 18 * sum(times.values()) + times.get(len(STAGES) - 1, 0.0)


def tensors(channels: int, rate: int, dtype: torch.dtype) -> tuple:
    """The op's arguments for one stage: x [B, C, T] channels-last, SnakeBeta parameters, a per-frame span."""
    act = SnakeBeta(channels, alpha_logscale=True).requires_grad_(False)
    for p in act.parameters():
        p.normal_(0, 0.5)
    fused = fa.FusedActivation1d(Activation1d(act)).to(DEVICE, dtype)
    alpha, inv = fused.act.params_fp32()
    x = torch.randn(BATCH, FRAMES * rate, channels, device=DEVICE, dtype=dtype).transpose(1, 2)
    valid = torch.tensor([[0, FRAMES]] * BATCH, device=DEVICE).unsqueeze(-1).expand(-1, -1, FRAMES).contiguous()
    return x, alpha, inv, valid, rate, fused.up_taps, fused.up_first, fused.down_taps, fused.down_left


def runner(job: Job, args: tuple) -> partial:
    if job.method == "two_pass":
        return partial(fa._triton_forward, *args, tiles=job.tile)
    return partial(fa._one_pass_triton, *args, job.method, job.tile)


def halves(job: Job, args: tuple) -> tuple[float, float]:
    """A two-pass config's (up ms, down ms), each kernel launched alone."""
    from triton.testing import do_bench

    x, alpha, inv, valid, rate, up_taps, up_first, down_taps, down_left = args
    up = partial(fa._launch_up, x, alpha, inv, valid, rate, up_taps, up_first, job.tile)
    a = up()
    down = partial(fa._launch_down, a, x, valid, rate, down_taps, down_left, job.tile)
    return tuple(do_bench(f, warmup=3, rep=15, return_mode="median") for f in (up, down))


def measure(job: Job, args: tuple, want: torch.Tensor | None) -> tuple[tuple, torch.Tensor]:
    """((ms, err, up ms, down ms), output) of one job; err NaN without a reference, up/down NaN for one-pass."""
    from triton.testing import do_bench

    got = (run := runner(job, args))()
    err = math.nan if want is None else ((got.float() - want).abs().max() / want.abs().max().clamp(min=1)).item()
    parts = halves(job, args) if job.method == "two_pass" else (math.nan, math.nan)
    return (do_bench(run, warmup=3, rep=15, return_mode="median"), err, *parts), got


def name_of(method: str, tile: Tile | TwoPass) -> str:
    if isinstance(tile, TwoPass):
        return f"two_pass {tile.kernels} up{tuple(tile.up)} down{tuple(tile.down)}" + (" divide" if tile.divide else "")
    return f"{method} {tuple(tile)}"


def gbs(method: str, stage: int, ms: float, part: bool = False) -> float:
    """GB/s of the traffic the kernels must move (a two-pass kernel alone: half of two-pass's)."""
    per = TRAFFIC[method] // (2 if part else 1)
    return per * BATCH * STAGES[stage][0] * FRAMES * STAGES[stage][1] / ms / 1e6


def config_lines(dtype: str, method: str, tile, step: int, got: dict, base: float) -> list[str]:
    """The config's line (ms per stage, model ms, ratio to the default, max err) and, two-pass, its kernels'."""
    cells = [f"{got[i][0]:7.3f}" if i in got else "      -" for i in range(len(STAGES))]
    total = model_ms({i: t[0] for i, t in got.items()}) if len(got) == len(STAGES) else math.nan
    err = max((f"{t[1]:.1e}" for t in got.values() if not math.isnan(t[1])), default="(the reference)")
    tag = " [table]" if step == 1 else ""
    lines = [f"{dtype} {name_of(method, tile) + tag:<60} {' '.join(cells)} | {total:7.2f} ms {base / total:5.2f}x"
             f" err {err}"]  # fmt: skip
    for k, part in ((2, "up"), (3, "down")):
        if method == "two_pass":
            cells = [f"{got[i][k]:7.3f}" if i in got else "      -" for i in range(len(STAGES))]
            lines.append(f"{dtype}   {part:<58} {' '.join(cells)}")
    return lines


def best_lines(dtype: str, results: dict) -> list[str]:
    """Per stage the fastest config; the best up and down tiles over the stages (per two-pass kernels family),
    the table entries, and the model time they add up to."""
    mine = {k[1:]: v for k, v in results.items() if k[0] == dtype}
    lines = [f"{dtype} fastest per stage:"]
    for i, (c, r) in enumerate(STAGES):
        timed = [(v[i][0], m, t) for (m, t), v in mine.items() if i in v]
        if timed:
            ms, m, t = min(timed, key=lambda e: e[0])
            lines.append(f"  C={c:>3} T={FRAMES * r:>6}: {ms:.3f} ms {gbs(m, i, ms):5.0f} GB/s  {name_of(m, t)}")
    full = {k: v for k, v in mine.items() if len(v) == len(STAGES)}
    for kernels, divide in [(k, d) for k in fa.TWO_PASS_KERNELS for d in (False, True)]:
        fam = {t: v for (m, t), v in full.items() if m == "two_pass" and (t.kernels, t.divide) == (kernels, divide)}
        if not fam:
            continue
        up = min(fam, key=lambda t: model_ms({i: e[2] for i, e in fam[t].items()}))
        down = min(fam, key=lambda t: model_ms({i: e[3] for i, e in fam[t].items()}))
        ms = model_ms({i: fam[up][i][2] + fam[down][i][3] for i in range(len(STAGES))})
        entry = f'TwoPass("{kernels}", Tile{tuple(up.up)}, Tile{tuple(down.down)}{", True" if divide else ""})'
        kernels = kernels + (" divide" if divide else "")
        lines.append(f"{dtype} best {kernels}: TWO_PASS_TILES[True] = {entry}"
                     f"  # {ms:.2f} ms of activations per batch (sum of its kernels alone)")  # fmt: skip
        own = {}  # stage -> its own fastest up + down
        for i in range(len(STAGES)):
            u, d = fam[up][i][2], fam[down][i][3]
            (u_own, t_up), (d_own, t_down) = (min((v[i][k], t) for t, v in fam.items()) for k in (2, 3))
            own[i] = u_own + d_own
            lines.append(f"  C={STAGES[i][0]:>3}: up {u:.3f} ms {gbs('two_pass', i, u, True):5.0f} GB/s, down"
                         f" {d:.3f} ms {gbs('two_pass', i, d, True):5.0f} GB/s; this stage's own best: up"
                         f" {u_own:.3f} {tuple(t_up.up)}, down {d_own:.3f} {tuple(t_down.down)}")  # fmt: skip
        lines.append(f"{dtype} {kernels} with each stage's own best tiles: {model_ms(own):.2f} ms per batch")
    for method in CANDIDATES:
        fam = {t: v for (m, t), v in full.items() if m == method and method != "two_pass"}
        if fam:
            tile = min(fam, key=lambda t: model_ms({i: e[0] for i, e in fam[t].items()}))
            ms = model_ms({i: e[0] for i, e in fam[tile].items()})
            entry = f'ONE_PASS_TILES[("{method}", True)] = Tile{tuple(tile)}'
            lines.append(f"{dtype} best {method}: {entry}  # {ms:.2f} ms")
    return lines


def warm(opt: argparse.Namespace) -> None:
    """A compile subprocess: runs its job's kernels once per stage of its group (Triton's disk cache)."""
    k, deadline, nice = opt.warm.split(":")
    os.nice(int(nice))
    for i in (job := plan(opt)[int(k)]).group:
        if time.time() > float(deadline):
            sys.exit(3)
        runner(job, tensors(*STAGES[i], DTYPES[job.dtype]))()
        torch.cuda.synchronize()


class Compile:
    """A compile subprocess for one (dtype, method, tile, group), started when `start` is called."""

    def __init__(self, cmd: list[str], log: str):
        self.cmd, self.log, self.proc = cmd, log, None

    def start(self) -> None:
        with open(self.log, "w") as err:
            self.proc = Popen(self.cmd, stdout=DEVNULL, stderr=err)

    def poll(self) -> int | None:
        """Its exit status; None while it runs or has not started."""
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # (not if it has ended)


def compiles(argv: list[str], opt, jobs: list[Job], deadline: float) -> dict:
    """{job[2:]: Compile} in plan order, one per (dtype, method, tile, group); the tables' first dtype's at normal
    priority, the rest niced."""
    logs, warmers = tempfile.mkdtemp(prefix="antialias_sweep_"), {}
    for k, job in enumerate(jobs):
        if job[2:] not in warmers:
            nice = 0 if (job.step, job.dtype) == (1, opt.dtypes[0]) else 10
            cmd = [sys.executable, os.path.abspath(__file__), *argv, "--warm", f"{k}:{deadline}:{nice}"]
            warmers[job[2:]] = Compile(cmd, os.path.join(logs, f"{k}.err"))
    return warmers


def top_up(warmers: dict) -> None:
    """Start compiles in plan order while fewer than MAX_COMPILES run (host memory: ~1.5 GB each)."""
    waiting = [w for w in warmers.values() if w.proc is None]
    running = sum(1 for w in warmers.values() if w.proc is not None and w.poll() is None)
    for w in waiting[: max(0, MAX_COMPILES - running)]:
        w.start()


def main(argv: list[str]) -> None:
    opt = parse(argv)
    if opt.warm:
        return warm(opt)
    if not torch.cuda.is_available():
        sys.exit("antialias_sweep.py times Triton kernels on a CUDA GPU; torch sees none here (nothing timed)")
    deadline, pending = LAUNCHED + opt.seconds, plan(opt)
    warmers = compiles(argv, opt, pending, deadline)
    top_up(warmers)
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__}; batch {BATCH}, {FRAMES} frames, channels-last;"
          f" {len(warmers)} compile processes; budget {opt.seconds:.0f} s", flush=True)  # fmt: skip
    print(f"{'':<65} {' '.join(f'C={c:<5}' for c, _ in STAGES)} | ms/batch vs table", flush=True)
    results, data, skipped = {}, {}, {}  # (dtype, method, tile) -> Timed; (stage, dtype) -> [args, ref]; why
    base = {}
    try:
        while pending:
            top_up(warmers)
            late = time.time() > deadline
            no_ref = {j[1:3] for j in pending if j.step == 1 and j.method == "two_pass"}
            job = next((j for j in pending if late or (warmers[j[2:]].poll() is not None
                        and ((j.step, j.method) == (1, "two_pass") or j[1:3] not in no_ref))), None)  # fmt: skip
            if job is None:
                time.sleep(0.05)
                continue
            pending.remove(job)
            proc = warmers[job[2:]]
            tail = "".join(Path(proc.log).read_text().splitlines()[-1:]) if proc.proc else ""
            why = {None: "still compiling at the deadline", 0: None, 3: "budget"}.get(proc.poll(), f"failed: {tail}")
            why = why or ("budget" if time.time() > deadline else None)
            key = (job.dtype, job.method, job.tile)
            try:
                if why is None:
                    args, want = data.get(job[1:3]) or [tensors(*STAGES[job.stage], DTYPES[job.dtype]), None]
                    timed, got = measure(job, args, want)
                    results.setdefault(key, {})[job.stage] = timed
                    data[job[1:3]] = [args, got if want is None else want]
            except Exception as exc:  # noqa: BLE001 - a launch that fails (registers, shared memory)
                why = f"{type(exc).__name__}: {str(exc)[:150]}"
            if why is not None:
                skipped[f"{job.dtype} C={STAGES[job.stage][0]} {name_of(job.method, job.tile)}"] = why
            if not any(j[2:5] == job[2:5] for j in pending):  # the config's last stage: its line
                got = results.get(key, {})
                if (job.step, job.method) == (1, "two_pass"):
                    base[job.dtype] = model_ms({i: t[0] for i, t in got.items()})
                lines = config_lines(job.dtype, job.method, job.tile, job.step, got, base.get(job.dtype, math.nan))
                print("\n".join(lines), flush=True)
    finally:
        for proc in warmers.values():
            proc.kill()
    for dtype in opt.dtypes:
        print("\n".join(best_lines(dtype, results)), flush=True)
    print("\n".join(f"skipped {k}: {v}" for k, v in skipped.items()))
    print(f"done in {time.time() - LAUNCHED:.0f} s; {len(skipped)} skipped", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
