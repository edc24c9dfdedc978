"""GPU: time BigVGAN's anti-aliased Snake alone, two-pass against one-pass (issue 18), in one ~90 s run.

    PYTHONPATH=. timeout 95 python3 benchmarks/antialias_sweep.py fp16 80 [--methods dot,gather] [--tiles 1]

BigVGAN v2 24 kHz 256x shapes (938 frames, batch 16, channels 768 .. 24 at 4 .. 256 samples per frame, channels-last,
per-frame span). A line per dtype and stage, flushed once timed: two-pass, then each one-pass method (--methods
order) with the table's tile (ONE_PASS_TILES, engines/fused_antialias.py): ms per call (do_bench median), GB/s of
one-pass minimum traffic (read x, write y), error against two-pass. --tiles N: up to N more tiles per method, a line
each, and the best. Compiles all start at once in subprocesses filling Triton's disk cache, one per (dtype, method,
tile, stages sharing a kernel). Nothing starts after `seconds` (default 80) from launch; it ends with each method's
whole-model activation time per batch (18 per stage, 1 more after the last), two-pass's, what was skipped; exit 0.
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
from batchvoc.engines.fused_antialias import Tile
from batchvoc.engines.triton_runtime import pow2_between
from batchvoc.models.activations import SnakeBeta
from batchvoc.models.antialias import Activation1d

BATCH, FRAMES = 16, 938
STAGES = [(768, 4), (384, 16), (192, 32), (96, 64), (48, 128), (24, 256)]  # (channels, samples per frame)
CANDIDATES = {  # --tiles, in order after the table's own; they compile for sm_90 without spills (ptxas, offline)
    "dot": [Tile(64, 64, 8), Tile(128, 32, 8), Tile(64, 64, 4), Tile(64, 32, 4), Tile(128, 64, 8)],
    "gather": [Tile(64, 64, 4), Tile(128, 32, 4), Tile(256, 32, 8), Tile(128, 64, 8)],
    "recompute": [Tile(32, 64, 4), Tile(64, 32, 4), Tile(128, 64, 8), Tile(64, 64, 4)],
}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
DEVICE = "cuda"
# step 1: the table's tile, 2: a candidate; method "two_pass" (tile None) or one-pass; group: stages sharing kernels
Job = namedtuple("Job", "step stage dtype method tile group")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dtypes", nargs="?", default="fp16", help="fp16, bf16 or fp16,bf16 (default fp16)")
    p.add_argument("seconds", nargs="?", type=float, default=80.0, help="nothing starts after this, from launch")
    p.add_argument("--methods", default=",".join(CANDIDATES), help="one-pass methods in order (default: all)")
    p.add_argument("--tiles", type=int, default=0, help="up to N more candidate tiles per method afterwards")
    p.add_argument("--warm", help=argparse.SUPPRESS)  # a compile subprocess: dtype:method:tile:stages:deadline:nice
    opt = p.parse_args(argv)
    opt.dtypes, opt.methods = opt.dtypes.split(","), [m for m in opt.methods.split(",") if m]
    for what, names, known in (("dtype", opt.dtypes, DTYPES), ("method", opt.methods, CANDIDATES)):
        if set(names) - set(known):
            p.error(f"unknown {what} {','.join(sorted(set(names) - set(known)))}; choose from {','.join(known)}")
    return opt


def plan(opt: argparse.Namespace) -> list[Job]:
    """The jobs in the order they are timed: the table's tiles over all stages, then the candidates. A job's group:
    the stages sharing its compiled kernel (Triton specializes integers on divisibility by 16: channels, samples,
    rate; the channel block is the power of two covering the channels, at most 64)."""
    key = [(c % 16 == 0, FRAMES * r % 16 == 0, r % 16 == 0, pow2_between(c, 16, 64)) for c, r in STAGES]
    groups = [tuple(j for j in range(len(STAGES)) if key[j] == key[i]) for i in range(len(STAGES))]
    table = {m: fa.ONE_PASS_TILES[(m, True)] for m in opt.methods}
    more = {m: [t for t in CANDIDATES[m] if t != table[m]][: opt.tiles] for m in opt.methods}
    jobs = [(1, i, n, m, table.get(m)) for n in opt.dtypes for i in range(len(STAGES)) for m in ("two_pass", *table)]
    jobs += [(2, i, n, m, t) for n in opt.dtypes for i in range(len(STAGES)) for m in more for t in more[m]]
    return [Job(*j, groups[j[1]]) for j in jobs]


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
    return partial(fa.antialiased_snake, *args) if job.method == "two_pass" else partial(
        fa._one_pass_triton, *args, job.method, job.tile)  # fmt: skip


def measure(job: Job, args: tuple, want: torch.Tensor | None) -> tuple[float, float, torch.Tensor]:
    from triton.testing import do_bench

    got = (run := runner(job, args))()
    err = math.nan if want is None else ((got.float() - want).abs().max() / want.abs().max().clamp(min=1)).item()
    return do_bench(run, warmup=3, rep=15, return_mode="median"), err, got


def describe(stage: int, ms: float, err: float, tile: Tile | None) -> str:
    gbs = 4 * BATCH * STAGES[stage][0] * FRAMES * STAGES[stage][1] / ms / 1e6  # read x, write y (2-byte dtypes)
    return f"{ms:.3f} ms ({gbs:.0f} GB/s" + (")" if tile is None else f", err {err:.1e}) {tuple(tile)}")


def summary(name: str, methods: list[str], results: dict, skipped: dict) -> list[str]:
    """Per method: the whole model's activation time per batch (fastest timed tile per stage); the best tile."""
    audio_s, lines, stages = BATCH * FRAMES * 256 / 24000, [], range(len(STAGES))
    timed = {m: [{t: ms for ms, _, t in results.get((i, name), {}).get(m, [])} for i in stages]
             for m in ("two_pass", *methods)}  # fmt: skip
    fastest = {m: {i: min(r.values()) for i, r in enumerate(timed[m]) if r} for m in timed}
    for method, got in fastest.items():
        ms = model_ms(got) or math.nan
        line = f"{name} {method:>9}: {ms:7.2f} ms of activations per batch ({audio_s / ms * 1e3:.0f}x real time)"
        line = line if got else f"{name} {method:>9}: no stage timed"
        if got and method != "two_pass" and set(got) <= set(fastest["two_pass"]):
            line += f", {model_ms({i: fastest['two_pass'][i] for i in got}) / ms:.2f}x two-pass's speed"
        missing = [str(STAGES[i][0]) for i in stages if i not in got]
        lines.append(line + (f"; stages C={','.join(missing)} skipped (not in the total)" if got and missing else ""))
        full = {t: sum(r[t] for r in timed[method]) for t in set.intersection(*map(set, timed[method]))}
        if len(set().union(*timed[method])) > 1 and full:
            tile, total = min(full.items(), key=lambda kv: kv[1])
            lines.append(f'{name} ONE_PASS_TILES[("{method}", True)] = {tile!r}  # {total:.3f} ms over the stages')
    return lines + [f"skipped {k}: {v}" for k, v in skipped.items() if k.startswith(name)]


def main(argv: list[str]) -> None:
    opt = parse(argv)
    if opt.warm:  # a compile subprocess: runs plan()[k]'s kernel once per stage of its group (Triton's disk cache)
        k, deadline, nice = opt.warm.split(":")
        os.nice(int(nice))
        for i in (job := plan(opt)[int(k)]).group:
            if time.time() > float(deadline):
                sys.exit(3)
            runner(job, tensors(*STAGES[i], DTYPES[job.dtype]))()
            torch.cuda.synchronize()
        return
    if not torch.cuda.is_available():
        sys.exit("antialias_sweep.py times Triton kernels on a CUDA GPU; torch sees none here (nothing timed)")
    deadline, pending, logs = LAUNCHED + opt.seconds, plan(opt), tempfile.mkdtemp(prefix="antialias_sweep_")
    warmers: dict[tuple, tuple] = {}  # job[2:] (dtype, method, tile, group) -> (compile process, its stderr file)
    for k, job in enumerate(pending):  # all compiles start now; candidates' and later dtypes' at low priority
        with open(os.path.join(logs, f"{k}.err"), "w") as err:
            nice = 0 if (job.step, job.dtype) == (1, opt.dtypes[0]) else 10
            cmd = [sys.executable, os.path.abspath(__file__), *argv, "--warm", f"{k}:{deadline}:{nice}"]
            warmers[job[2:]] = warmers.get(job[2:]) or (Popen(cmd, stdout=DEVNULL, stderr=err), err.name)
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__}; batch {BATCH}, {FRAMES} frames, channels-last;"
          f" {len(warmers)} compile processes; budget {opt.seconds:.0f} s", flush=True)  # fmt: skip
    # job[1:3] (stage, dtype) -> method -> [(ms, err, tile)]; -> [the op's arguments, two-pass output]; name -> why
    results, data, skipped = {}, {}, {}
    try:
        while pending:
            late, no_ref = time.time() > deadline, {j[1:3] for j in pending if j.method == "two_pass"}
            job = next((j for j in pending if late or (warmers[j[2:]][0].poll() is not None
                        and (j.method == "two_pass" or j[1:3] not in no_ref))), None)  # fmt: skip
            if job is None:
                time.sleep(0.05)
                continue
            pending.remove(job)
            proc, tail = warmers[job[2:]][0], "".join(Path(warmers[job[2:]][1]).read_text().splitlines()[-1:])
            why = {None: "still compiling at the deadline", 0: None, 3: "budget"}.get(proc.poll(), f"failed: {tail}")
            why = why or ("budget" if time.time() > deadline else None)
            try:
                if why is None:
                    args, want = data.get(job[1:3]) or [tensors(*STAGES[job.stage], DTYPES[job.dtype]), None]
                    ms, err, got = measure(job, args, want)
                    results.setdefault(job[1:3], {}).setdefault(job.method, []).append((ms, err, job.tile))
                    data[job[1:3]] = [args, got if job.method == "two_pass" else want]
            except Exception as exc:  # noqa: BLE001 - a launch that fails (registers, shared memory)
                why = f"{type(exc).__name__}: {str(exc)[:150]}"
            if why is not None:
                skipped[f"{job.dtype} C={STAGES[job.stage][0]} {job.method} {tuple(job.tile or ()) or ''}"] = why
            head = f"{job.dtype} C={STAGES[job.stage][0]:>4} T={FRAMES * STAGES[job.stage][1]:>7}:"
            if job.step == 2 and why is None:
                print(f"{head} tile {job.method} {describe(job.stage, ms, err, job.tile)}", flush=True)
            elif job.step == 1 and not any(j[:3] == job[:3] for j in pending):
                timed = {m: results.get(job[1:3], {}).get(m) for m in ("two_pass", *opt.methods)}
                parts = [m.replace("_", "-") + " " + (describe(job.stage, *t[0]) if t else "skipped")
                         for m, t in timed.items()]  # fmt: skip
                print(f"{head} {' | '.join(parts)}", flush=True)
    finally:
        for proc, _ in warmers.values():
            proc.kill()  # (not if it has ended)
    for name in opt.dtypes:
        print("\n".join(summary(name, opt.methods, results, skipped)), flush=True)
    print(f"done in {time.time() - LAUNCHED:.0f} s; {len(skipped)} skipped", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
