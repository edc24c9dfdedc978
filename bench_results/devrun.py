"""Device runs for the layout / polyphase work: python bench_results/devrun.py PLAN OUTDIR (needs omegaconf).

Each step is a bench (batchvoc.bench.run_bench with overrides) or a profile; results go to OUTDIR as JSON/text.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from batchvoc.batching import window_for
from batchvoc.bench import run_bench, table
from batchvoc.engines import build_engine
from batchvoc.models import load_vocoder

OUT = Path(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("OUT", "."))
T0 = time.time()


def bench(tag, **over):
    base = OmegaConf.load("conf/bench.yaml")
    for k in ("defaults", "hydra"):
        base.pop(k, None)
    cfg = OmegaConf.merge(base, OmegaConf.create(over))
    cfg.out = f"/tmp/bench_{tag}.json"
    print(f"=== {tag} at {time.time() - T0:.0f}s", flush=True)
    t = time.time()
    rep = run_bench(cfg)
    print(f"=== {tag} took {time.time() - t:.0f}s", flush=True)
    rep["tag"] = tag
    REPORTS.append(rep)
    (OUT / "results.json").write_text(json.dumps(REPORTS, indent=1, default=str))
    return rep


REPORTS = []
LIMIT = float(os.environ.get("DEVRUN_LIMIT", "560"))


def left() -> float:
    return LIMIT - (time.time() - T0)


def step(need, fn, *a, **k):
    """Run fn if at least `need` seconds are left; a failure is printed, not fatal."""
    if left() < need:
        print(f"--- skipped {a[:1]} ({left():.0f}s left, need {need})", flush=True)
        return None
    try:
        return fn(*a, **k)
    except Exception as exc:  # keep going
        import traceback

        traceback.print_exc()
        print(f"--- failed {a[:1]}: {exc!r}"[:300], flush=True)
        return None


def classify(name: str) -> str:
    n = name.lower()
    if n.startswith("triton_") or "triton" in n:
        if "tem_" in n or "template" in n or "conv" in n and n.startswith("triton_tem"):
            return "triton conv template"
        return "triton fused elementwise/activation"
    if "nchwtonhwc" in n or "nhwctonchw" in n:
        return "cuDNN layout transpose"
    if "dgrad" in n:
        return "conv transposed (dgrad)"
    if "fprop" in n or "conv" in n or "implicit" in n or "gemm" in n or "cutlass" in n or "xmma" in n:
        return "conv (fprop)"
    if n in ("up_snake", "down"):
        return "fused anti-alias (batchvoc triton)"
    if "gather" in n or "index" in n:
        return "aten gather/index"
    if "pad" in n or "replication" in n:
        return "aten pad"
    if "elementwise" in n or "vectorized" in n or "copy" in n or "reduce" in n:
        return "aten elementwise/copy"
    return "other"


def profile(tag, preset, backend, precision, batch, iters=5, **options):
    print(f"=== profile {tag} at {time.time() - T0:.0f}s", flush=True)
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    model, pre = load_vocoder(preset, "random")
    c = model.receptive_field()
    L = window_for(c) + 2 * c
    eng = build_engine(
        model, pre, backend, precision, "cuda", [(batch, L)], os.environ.get("BATCHVOC_CACHE"), **options
    )
    mel = torch.randn(batch, pre.n_mels, L, device="cuda") * 2 - 6
    valid = torch.tensor([[c, L - c]] * batch, device="cuda")
    for _ in range(3):
        eng(mel, valid)
    torch.cuda.synchronize()
    with prof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for _ in range(iters):
            eng(mel, valid)
        torch.cuda.synchronize()
    ka = p.key_averages()
    key = "self_device_time_total"
    try:
        txt = ka.table(sort_by=key, row_limit=30, max_name_column_width=90)
    except Exception:
        key = "self_cuda_time_total"
        txt = ka.table(sort_by=key, row_limit=30, max_name_column_width=90)
    groups = {}
    total = 0.0
    for e in ka:
        t = getattr(e, key, None) or 0
        if t <= 0 or getattr(e, "device_type", None) != torch.autograd.DeviceType.CUDA:
            continue
        g = classify(e.key)
        groups[g] = groups.get(g, 0) + t
        total += t
    lines = [f"{tag}: {eng.describe()} B={batch} L={L}, GPU ms per forward {total / iters / 1e3:.2f}"]
    for g, v in sorted(groups.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {g:36} {v / total * 100:5.1f}%  {v / iters / 1e3:7.3f} ms")
    summary = "\n".join(lines)
    with open(OUT / "profiles.txt", "a") as f:
        f.write(summary + "\n\n" + txt + "\n\n")
    print(summary, flush=True)
    return summary


PLANS = {}


def plan(f):
    PLANS[f.__name__] = f
    return f


GSV, BVG = "gsv_v4", "bigvgan_v2_24khz_100band_256x"


@plan
def final():
    sums = []
    step(
        60,
        bench,
        "gsv_b16",
        preset=GSV,
        batch=[16],
        precisions=["fp32", "fp16", "bf16"],
        backends=["eager", "inductor:mode=default"],
    )
    sums.append(step(40, profile, "gsv_inductor_default_fp16_b16", GSV, "inductor", "fp16", 16, mode="default"))
    step(
        200,
        bench,
        "bvg_b16",
        preset=BVG,
        batch=[16],
        frames=938,
        utterances=8,
        precisions=["bf16", "fp16"],
        backends=["eager", "inductor:mode=default"],
    )
    sums.append(step(40, profile, "bvg_inductor_default_bf16_b16", BVG, "inductor", "bf16", 16, mode="default"))
    step(200, bench, "gsv_b16_maxautotune", preset=GSV, batch=[16], precisions=["fp16"], backends=["inductor"])
    sums.append(step(40, profile, "gsv_inductor_maxautotune_fp16_b16", GSV, "inductor", "fp16", 16))
    step(
        60,
        bench,
        "gsv_b1",
        preset=GSV,
        batch=[1],
        precisions=["fp32", "fp16", "bf16"],
        backends=["eager", "inductor:mode=default"],
    )
    step(
        90,
        bench,
        "bvg_b1",
        preset=BVG,
        batch=[1],
        frames=938,
        utterances=4,
        precisions=["bf16", "fp16"],
        backends=["eager"],
    )
    step(
        120,
        bench,
        "bvg_b1_inductor",
        preset=BVG,
        batch=[1],
        frames=938,
        utterances=4,
        precisions=["bf16"],
        backends=["inductor:mode=default"],
    )
    print("\n\n".join([table(r) for r in REPORTS] + [s for s in sums if s]))


@plan
def s2a():
    """Session 2, run 1: gsv_v4 at the runner's new row length (L = 1024: one 10 s item per row), cuDNN autotuned."""
    sums = []
    g16 = dict(preset=GSV, batch=[16], utterances=16)
    step(30, bench, "gsv_b16_eager", backends=["eager"], precisions=["fp16", "bf16"], **g16)
    step(
        200,
        bench,
        "gsv_b16_inductor_modes",
        backends=["inductor", "inductor:mode=default", "inductor:mode=reduce-overhead"],
        precisions=["fp16"],
        **g16,
    )
    sums.append(step(30, profile, "gsv_maxautotune_fp16_b16", GSV, "inductor", "fp16", 16))
    step(60, bench, "gsv_b32", preset=GSV, batch=[32], utterances=32, backends=["inductor:mode=default"],
         precisions=["fp16"])  # fmt: skip
    step(90, bench, "gsv_b1", preset=GSV, batch=[1], utterances=8, backends=["eager", "inductor:mode=default"],
         precisions=["fp16", "bf16"])  # fmt: skip
    step(40, bench, "bvg_b1_eager", preset=BVG, batch=[1], frames=938, utterances=4, backends=["eager"],
         precisions=["fp16", "bf16"])  # fmt: skip
    step(150, bench, "gsv_b16_bf16_maxautotune", backends=["inductor"], precisions=["bf16"], **g16)
    print("\n\n".join([table(r) for r in REPORTS] + [s for s in sums if s]))


def tiny_beta(preset=None, alpha=None):
    """Every SnakeBeta beta = 1e-4 (and alpha = `alpha` if given): eager fp16 / bf16 / fused on a whole 10 s mel;
    finite? SNR vs fp32. With random weights and alpha ~ 1, 1/beta * sin^2 grows the signal 1e4-fold per layer
    until fp16's range overflows; alpha = 1e-2 keeps alpha^2 / beta = 1, the scale a trained model keeps."""
    from batchvoc.bench import accuracy
    from batchvoc.models.activations import SnakeBeta

    print(f"=== tiny_beta at {time.time() - T0:.0f}s", flush=True)
    model, pre = load_vocoder(preset or BVG, "random")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SnakeBeta):
                m.beta.fill_(math.log(1e-4) if m.alpha_logscale else 1e-4)
                if alpha is not None:
                    m.alpha.fill_(math.log(alpha) if m.alpha_logscale else alpha)
    mel = torch.randn(1, pre.n_mels, 938, generator=torch.Generator().manual_seed(0)) * 2 - 6
    ref = build_engine(model, pre, "eager", "fp32", "cuda")(mel).cpu().numpy()
    lines = []
    for backend, opts in (("eager", {}), ("eager", dict(antialias="fused", layout="channels_last_2d"))):
        for precision in ("fp16", "bf16"):
            out = build_engine(model, pre, backend, precision, "cuda", **opts)(mel).cpu().numpy()
            acc = accuracy(out, ref)
            finite = bool(np.isfinite(out).all())
            tag = f"alpha={alpha} {backend}{opts or ''} {precision}"
            lines.append(f"tiny beta 1e-4 {tag}: finite={finite} snr={acc['snr_db']:.1f} dB")
            print(lines[-1], flush=True)
    return "\n".join(lines)


@plan
def s2b():
    """Session 2, run 2: BigVGAN v2 24k with the fused Triton anti-aliased Snake."""
    sums = []
    bv = dict(preset=BVG, frames=938)
    fused_eager = "eager:antialias=fused,layout=channels_last_2d"
    step(60, bench, "bvg_b16_eager", batch=[16], utterances=16, backends=["eager", fused_eager],
         precisions=["fp32", "bf16", "fp16"], **bv)  # fmt: skip
    sums.append(step(30, tiny_beta))
    step(200, bench, "bvg_b16_inductor", batch=[16], utterances=32, backends=["inductor:mode=default"],
         precisions=["bf16", "fp16"], **bv)  # fmt: skip
    sums.append(step(30, profile, "bvg_inductor_fused_bf16_b16", BVG, "inductor", "bf16", 16, mode="default"))
    step(150, bench, "bvg_b1", batch=[1], utterances=4, backends=["inductor:mode=default"], precisions=["bf16", "fp16"],
         **bv)  # fmt: skip
    print("\n\n".join([table(r) for r in REPORTS] + [s for s in sums if s]))


@plan
def s2c():
    """Session 2, run 3: steady-state tables (several batches per timed run) for both presets, fused kernel v2."""
    sums = []
    bv = dict(preset=BVG, frames=938)
    fused_eager = "eager:antialias=fused,layout=channels_last_2d"
    step(150, bench, "gsv_b16_steady", preset=GSV, batch=[16], utterances=64, backends=["eager", "inductor"],
         precisions=["fp16", "bf16"])  # fmt: skip
    step(150, bench, "bvg_b16_steady", batch=[16], utterances=48, backends=[fused_eager, "inductor"],
         precisions=["bf16", "fp16"], **bv)  # fmt: skip
    sums.append(step(20, profile, "bvg_inductor_fused2_bf16_b16", BVG, "inductor", "bf16", 16))
    sums.append(step(30, tiny_beta, None, 1e-2))
    step(90, bench, "bvg_b1", batch=[1], utterances=4, backends=["inductor"], precisions=["bf16", "fp16"], **bv)
    print("\n\n".join([table(r) for r in REPORTS] + [s for s in sums if s]))


@plan
def tb():
    """Session 2, run 5: tiny beta after accumulating the AMP blocks' sum in float32; BigVGAN speed unchanged?"""
    sums = [step(30, tiny_beta), step(30, tiny_beta, None, 1e-2)]
    step(150, bench, "bvg_b16_steady2", preset=BVG, frames=938, batch=[16], utterances=48, backends=["inductor"],
         precisions=["fp16", "bf16"])  # fmt: skip
    print("\n\n".join([table(r) for r in REPORTS] + [s for s in sums if s]))


@plan
def s3a():
    """Session 3, run 1: gsv_v4 small batches with CUDA graphs (do activations that fit in L2 run faster?) and the
    steady state of batch 16 over 16 batches."""
    sums = []
    for b in (2, 4, 8):
        step(60, bench, f"gsv_b{b}_cudagraphs", preset=GSV, batch=[b], utterances=8 * b,
             backends=["inductor:mode=reduce-overhead", "inductor"], precisions=["fp16"])  # fmt: skip
    step(90, bench, "gsv_b16_long", preset=GSV, batch=[16], utterances=256, backends=["inductor"],
         precisions=["fp16"])  # fmt: skip
    sums.append(step(30, profile, "gsv_default_fp16_b4", GSV, "inductor", "fp16", 4))
    step(120, bench, "bvg_b16_long", preset=BVG, frames=938, batch=[16], utterances=160, backends=["inductor"],
         precisions=["fp16"])  # fmt: skip
    print("\n\n".join([table(r) for r in REPORTS] + [s for s in sums if s]))


@plan
def s3b():
    """Session 3, run 2: gsv_v4 with the fused resblock kernel (default on a GPU), against the cuDNN path."""
    sums = []
    step(120, bench, "gsv_b16_fused", preset=GSV, batch=[16], utterances=64,
         backends=["inductor", "inductor:resblocks=conv"], precisions=["fp16", "bf16"])  # fmt: skip
    sums.append(step(30, profile, "gsv_fused_fp16_b16", GSV, "inductor", "fp16", 16))
    print("\n\n".join([table(r) for r in REPORTS] + [s for s in sums if s]))


@plan
def s3c():
    """Session 3, run 4: gsv_v4 fused resblocks at 16 channels only (tuned tiles) against cuDNN, steady state over
    16 batches; BigVGAN steady state over 6 batches."""
    step(150, bench, "gsv_b16_fused16_long", preset=GSV, batch=[16], utterances=256,
         backends=["inductor", "inductor:resblocks=conv"], precisions=["fp16"])  # fmt: skip
    step(150, bench, "bvg_b16_long", preset=BVG, frames=938, batch=[16], utterances=96, backends=["inductor"],
         precisions=["fp16", "bf16"])  # fmt: skip
    print("\n\n".join(table(r) for r in REPORTS))


def fused_up_to(channels: int) -> None:
    """Fuse resblocks of at most `channels` channels in the engines built from now on (resblocks=fused)."""
    from batchvoc.engines import fused_resblock

    fused_resblock.FUSED_MAX_CHANNELS = channels


@plan
def s4a():
    """Session 4, run 1: gsv_v4 fp16 with the per-tap fused resblock kernel (v3) at up to 32 / 64 channels against
    cuDNN, 8 batches per timed run; profile of the faster fused setting."""
    sums = []
    g = dict(preset=GSV, batch=[16], utterances=128, precisions=["fp16"])
    fused_up_to(32)
    step(150, bench, "gsv_b16_fused32", backends=["inductor:resblocks=conv", "inductor:resblocks=fused"], **g)
    fused_up_to(64)
    step(100, bench, "gsv_b16_fused64", backends=["inductor:resblocks=fused"], **g)
    x = {r["tag"]: r["results"][-1].get("x_realtime", 0) for r in REPORTS}
    fused_up_to(64 if x.get("gsv_b16_fused64", 0) > x.get("gsv_b16_fused32", 0) else 32)
    sums.append(step(40, profile, "gsv_fused_fp16_b16", GSV, "inductor", "fp16", 16, resblocks="fused"))
    print("\n\n".join([table(r) for r in REPORTS] + [s for s in sums if s]))


def host_diag(tag, preset=GSV, backend="inductor", precision="fp16", batch=16, utterances=256, device="cuda",
              profile_launch=False, **options):  # fmt: skip
    """Where the host's time goes per batch in batching.vocode's loop: packing, launching (engine call + copy
    start), waiting for the previous batch's audio, stitching; against the loop's wall time per batch."""
    from batchvoc.batching import Stitcher, _HostCopies, pack
    from batchvoc.hostmem import retain_freed_memory

    retain_freed_memory()
    print(f"=== host_diag {tag} at {time.time() - T0:.0f}s", flush=True)
    model, pre = load_vocoder(preset, "random")
    c = model.receptive_field()
    w = window_for(c)
    eng = build_engine(model, pre, backend, precision, device, [(batch, w + 2 * c)], os.environ.get("BATCHVOC_CACHE"),
                       **options)  # fmt: skip
    rng = np.random.default_rng(0)
    items = [(i, (rng.standard_normal((pre.n_mels, 1000)) * 2 - 6).astype(np.float32)) for i in range(utterances)]
    parts = dict(pack=0.0, launch=0.0, wait=0.0, stitch=0.0)
    for timed_run in (False, True):
        stitcher, to_host, waiting, batches = Stitcher(pre.hop_length), _HostCopies(), None, 0
        stream = pack(items, w, c, batch, pre.silence)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        while True:
            a = time.perf_counter()
            packed = next(stream, None)
            parts["pack"] += time.perf_counter() - a
            if packed is not None:
                a = time.perf_counter()
                audio = to_host(eng(packed.mel, packed.valid))
                parts["launch"] += time.perf_counter() - a
                batches += 1
            if waiting is not None:
                a = time.perf_counter()
                host = waiting[1]()
                parts["wait"] += time.perf_counter() - a
                a = time.perf_counter()
                stitcher.feed(waiting[0], host)
                parts["stitch"] += time.perf_counter() - a
            if packed is None:
                break
            waiting = (packed, audio)
        wall = time.perf_counter() - start
        if not timed_run:
            parts = dict.fromkeys(parts, 0.0)
    line = f"{tag}: {batches} batches, {wall / batches * 1e3:.2f} ms per batch wall; per batch " + ", ".join(
        f"{k} {v / batches * 1e3:.2f} ms" for k, v in parts.items()
    )
    print(line, flush=True)
    if profile_launch:
        launch_profile(eng, next(pack(items, w, c, batch, pre.silence)))
    return line


def launch_profile(eng, packed, calls=8):
    """Where the host's time goes inside engine calls (cProfile, top functions by own time)."""
    import cProfile
    import pstats

    torch.cuda.synchronize()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        eng(packed.mel, packed.valid)
    prof.disable()
    torch.cuda.synchronize()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(25)


@plan
def s4d():
    """Session 4, run 4: gsv_v4 fp16 fused up to 32 channels (tiles fixed from the sweeps): where the host's time
    goes; default mode against CUDA graphs at batch 16 and batch 32, 256 items."""
    fused_up_to(32)
    sums = [step(60, host_diag, "gsv_fused32_b16")]
    g = dict(preset=GSV, utterances=256, precisions=["fp16"])
    step(200, bench, "gsv_b16_fused32", backends=["inductor", "inductor:mode=reduce-overhead"], batch=[16], **g)
    step(120, bench, "gsv_b32_fused32", backends=["inductor"], batch=[32], **g)
    sums.append(step(40, profile, "gsv_fused_fp16_b16", GSV, "inductor", "fp16", 16))
    print("\n\n".join([table(r) for r in REPORTS] + [s for s in sums if s]))


@plan
def s4e():
    """Session 4, run 5 (after the end-to-end job): gsv_v4 fp16 and bf16 with the default engine (fused resblocks
    up to 32 channels), batch 16, 16 batches per timed run."""
    step(150, bench, "gsv_b16_default", preset=GSV, batch=[16], utterances=256, backends=["inductor"],
         precisions=["fp16", "bf16"])  # fmt: skip
    print("\n\n".join(table(r) for r in REPORTS))


def use_tiles(path) -> None:
    """Fused convs from now on take conv_tiles.py's fastest config per (channels, kernel size) from `path`."""
    from batchvoc.engines import fused_resblock

    best, default = json.loads(Path(path).read_text()), fused_resblock.tiles

    def tiles(c_in, c_out, k, act=True):
        return best.get(f"{c_in},{k},{act:d}") or default(c_in, c_out, k, act)

    fused_resblock.tiles = tiles


@plan
def s5a():
    """Session 5, run 1 (after conv_tiles.py's sweep): the host loop with freed memory retained, and where the
    engine call's host time goes."""
    print(step(60, host_diag, "gsv_b16_retained", profile_launch=True))


@plan
def s5b():
    """Session 5, run 2: gsv_v4 fp16 with the sweep's fastest fused configs, fused up to 32 and 64 channels, 16
    batches per timed run; batch 32 and a profile of the faster."""
    use_tiles(os.environ.get("BEST_TILES", "/tmp/best.json"))
    sums, x = [], {}
    g = dict(preset=GSV, batch=[16], utterances=256, precisions=["fp16"], backends=["inductor"])
    for channels in (32, 64):
        fused_up_to(channels)
        rep = step(150, bench, f"gsv_b16_fused{channels}", **g)
        x[channels] = rep["results"][-1].get("x_realtime", 0) if rep else 0
    fused_up_to(max(x, key=x.get))
    step(150, bench, f"gsv_b32_fused{max(x, key=x.get)}", **dict(g, batch=[32]))
    sums.append(step(40, profile, "gsv_fused_fp16_b16", GSV, "inductor", "fp16", 16))
    print("\n\n".join([table(r) for r in REPORTS] + [s for s in sums if s]))


@plan
def s5c():
    """Session 5, run 3: gsv_v4 with the engine's defaults (fused up to 64 channels, the tiles table), fp16 and bf16,
    batch 16, 16 batches per timed run; profile."""
    step(150, bench, "gsv_b16_default", preset=GSV, batch=[16], utterances=256, backends=["inductor"],
         precisions=["fp16", "bf16"])  # fmt: skip
    sums = [step(40, profile, "gsv_default_fp16_b16", GSV, "inductor", "fp16", 16)]
    print("\n\n".join([table(r) for r in REPORTS] + [s for s in sums if s]))


@plan
def s5d():
    """Session 5, run 8: BigVGAN v2 24k fp16 with the engine's defaults on the final code, 6 batches of 16 per timed
    run (session 3's 606x was measured before the host-path changes of sessions 4 and 5)."""
    step(100, bench, "bvg_b16_long", preset=BVG, frames=938, batch=[16], utterances=96, backends=["inductor"],
         precisions=["fp16"])  # fmt: skip
    print("\n\n".join(table(r) for r in REPORTS))


@plan
def s5e():
    """Session 5, run 9: gsv_v4 fp16 with the engine's defaults and host-to-device copies on a stream of their own
    (commit 0779edd, reverted: 3,496x against run 5's 3,540x), batch 16, 16 batches per timed run."""
    step(120, bench, "gsv_b16_upload_stream", preset=GSV, batch=[16], utterances=256, backends=["inductor"],
         precisions=["fp16"])  # fmt: skip
    print("\n\n".join(table(r) for r in REPORTS))


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", flush=True)
    PLANS[sys.argv[1]]()
    print(f"total {time.time() - T0:.0f}s")
