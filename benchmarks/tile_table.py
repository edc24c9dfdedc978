"""GPU: sweep the fused resblock convolutions' tiles in the forms gsv_v4's engine launches them; write a tile table.

    PYTHONPATH=. python3 benchmarks/tile_table.py compile PART PARTS [fp16|bf16]   # fill Triton's cache, one part
    PYTHONPATH=. python3 benchmarks/tile_table.py time OUT.json [fp16|bf16]         # time, pick, write the table

Run `compile` as PARTS processes side by side first (each compiles every PARTS-th case): the sweep is ~270 kernel
compiles, ~1 s each, and the timing pass then finds them in Triton's cache. OUT.json is a `tile_table` engine option
({"C_IN,KSIZE,ACT": tile}); OUT.json's sibling OUT.sweep.json keeps every timing.

The forms are what FusedResBlock launches in a stage of gsv_v4 (engines/fused_resblock.py, read from Inductor's code
of the engine): every conv takes rows already activated (ACT 0) and stores its output activated; a group's first conv
is dilated (d = 3 or 5; the stage's first ones run side by side in first_convs.py, not tiled here) without a
residual, its second undilated with the activated residual. The table is keyed by (C_IN, KSIZE, ACT), so per key the
pick is the tile with the least time over the forms sharing it, each weighted by how many convs of a stage take it.
B = 16 rows of 1,024 frames at the stage's samples per frame, random fp16 data, per-frame spans of whole rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch

STAGES = ((64, 120), (32, 240), (16, 480))  # gsv_v4's fused stages: channels, samples per frame
# (ksize, dilation, residual, convs of a stage in this form) per table key: a group's first conv (d = 3, 5; the
# k = 3 block's d = 1 one too), and its second (d = 1, the group's residual)
FORMS = {3: ((3, 3, False, 3), (3, 1, True, 3)), 7: ((7, 3, False, 2), (7, 1, True, 3)),
         11: ((11, 5, False, 2), (11, 1, True, 3))}  # fmt: skip
B, FRAMES = 16, 1024


def candidates(channels: int) -> list[dict[str, int]]:
    """The default pick first, then tile heights x pipeline depths (0: unrolled taps) x warps."""
    from batchvoc.engines.fused_resblock import tiles

    found = []
    for ksize in FORMS:
        found.append(tiles(channels, channels, ksize, activate_input=False))
    for bm, stages, warps in itertools.product((64, 128, 256), (0, 2, 3), (4, 8)):
        if bm == 64 and warps == 8:
            continue
        tile = dict(BLOCK_M=bm, BLOCK_N=min(channels, 64), BLOCK_C=max(16, channels), num_warps=warps, num_stages=1)
        found.append(tile | ({"STAGES": stages} if stages else {}))
    unique = {tuple(sorted(t.items())): t for t in found}
    return list(unique.values())


def cases() -> list[tuple[int, int, int, tuple, dict]]:
    """(channels, samples per frame, key ksize, form, tile) for every measurement."""
    return [(c, rate, k, form, tile) for c, rate in STAGES for k, forms in FORMS.items() for form in forms
            for tile in candidates(c)]  # fmt: skip


def inputs(channels: int, rate: int, ksize: int, dtype: torch.dtype) -> tuple:
    g = torch.Generator(device="cuda").manual_seed(channels * 100 + ksize)
    t = FRAMES * rate
    x = torch.randn(B, t, channels, device="cuda", dtype=dtype, generator=g).transpose(1, 2)
    res = torch.randn(B, t, channels, device="cuda", dtype=dtype, generator=g).transpose(1, 2)
    w = (torch.randn(ksize, channels, channels, device="cuda", generator=g) / (channels * ksize) ** 0.5).to(dtype)
    bias = (torch.randn(channels, device="cuda", generator=g) * 0.1).to(dtype)
    valid = torch.tensor([[0, FRAMES]] * B, device="cuda").unsqueeze(-1).expand(-1, -1, FRAMES).contiguous()
    return x, res, w, bias, valid


def launch(case, data):
    """A no-argument call of `lrelu_conv`'s kernel for one case."""
    from batchvoc.engines.fused_resblock import _triton_forward

    _, rate, _, (ksize, dilation, residual, _), tile = case
    x, res, w, bias, valid = data
    pad = (ksize - 1) * dilation // 2
    return lambda: _triton_forward(x, w, bias, res if residual else None, valid, rate, dilation, pad, 0.1, False, True,
                                   config=tile, residual_activated=residual)  # fmt: skip


def run(mode: str, precision: str, part: int = 0, parts: int = 1, out: Path | None = None) -> None:
    """mode "compile": launch every parts-th case from part once (Triton compiles it); "time": time every case and
    write the table to out."""
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    todo = cases()[part::parts]
    data_key, data, rows, refs = None, None, [], {}
    for case in todo:
        channels, rate, ksize = case[0], case[1], case[3][0]
        if (channels, ksize) != data_key:
            data_key, data = (channels, ksize), inputs(channels, rate, ksize, dtype)
        try:
            fn = launch(case, data)
            y = fn().float()
            if mode == "time":
                from triton.testing import do_bench

                ref = refs.setdefault((channels, tuple(case[3])), y)  # the form's first tile run as reference
                err = ((y - ref).abs().max() / ref.abs().max()).item()
                rows.append(dict(channels=channels, key_ksize=case[2], form=list(case[3]), tile=case[4], err=err,
                                 ms=do_bench(fn, warmup=10, rep=40)))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a tile that does not fit (shared memory) is skipped
            print(f"skipped {case}: {type(exc).__name__}: {str(exc)[:80]}", flush=True)
    torch.cuda.synchronize()
    if mode == "time":
        pick(rows, out)


def pick(rows: list[dict], out: Path) -> None:
    """Per key, the tile of least weighted time; print it against the default pick and write the table."""
    from batchvoc.engines.fused_resblock import tiles

    out.with_suffix(".sweep.json").write_text(json.dumps(rows, indent=0))
    table, total_default, total_best = {}, 0.0, 0.0
    print(f"{'C':>3} {'k':>3} | default ms | best ms | best tile")
    for channels, _ in STAGES:
        for ksize, forms in FORMS.items():
            mine = [r for r in rows if r["channels"] == channels and r["key_ksize"] == ksize]
            weighted: dict[tuple, float] = {}
            for tile in {tuple(sorted(r["tile"].items())) for r in mine if r["err"] < 1e-2}:
                times = {tuple(r["form"]): r["ms"] for r in mine if tuple(sorted(r["tile"].items())) == tile}
                if len(times) == len(forms):
                    weighted[tile] = sum(times[tuple(f)] * f[3] for f in map(list, forms))
            default = tuple(sorted(tiles(channels, channels, ksize, activate_input=False).items()))
            best = min(weighted, key=weighted.get)
            total_default, total_best = total_default + weighted[default], total_best + weighted[best]
            table[f"{channels},{ksize},0"] = dict(best)
            print(f"{channels:>3} {ksize:>3} | {weighted[default]:10.3f} | {weighted[best]:7.3f} | {dict(best)}")
    print(f"all: default {total_default:.3f} ms, best {total_best:.3f} ms per forward's tiled convs")
    out.write_text(json.dumps(table, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    part = steps.add_parser("compile", help="fill Triton's cache with every PARTS-th case from PART")
    part.add_argument("part", type=int)
    part.add_argument("parts", type=int)
    time = steps.add_parser("time", help="time every case, pick per key, write OUT.json and OUT.sweep.json")
    time.add_argument("out")
    for step in (part, time):
        step.add_argument("precision", nargs="?", default="fp16", choices=("fp16", "bf16"))
    args = parser.parse_args()
    if args.step == "compile" and not 0 <= args.part < args.parts:
        parser.error(f"PART is 0 to PARTS - 1, not {args.part} of {args.parts}")
    if not torch.cuda.is_available():
        sys.exit("tile_table.py times Triton kernels on a CUDA GPU; this machine has none")
    if args.step == "compile":
        run("compile", args.precision, args.part, args.parts)
    else:
        run("time", args.precision, out=Path(args.out))


if __name__ == "__main__":
    main()
