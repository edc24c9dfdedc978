"""Screening: persistent (flattened-loop) lrelu_conv variants and a wider tile sweep, per gsv_v4 fused layer.

python persist.py compile PART NPARTS   # run each (layer, variant) once: fills Triton's cache (parallel)
python persist.py time OUT.json         # time all, print per-layer best against the default tile
"""

import itertools
import json
import sys

import torch
import triton
import triton.language as tl
from triton.testing import do_bench
from triton.tools.tensor_descriptor import TensorDescriptor

from batchvoc.engines.conv_kernels import _finish, _leaky
from batchvoc.engines.fused_resblock import _triton_forward

DT = torch.float16
B, L = 16, 1024
SMS = 132


@triton.jit
def pconv_tma(
    x_desc,
    w_ptr,
    bias_ptr,
    res_ptr,
    extra_ptr,
    out_ptr,
    act_ptr,
    valid_ptr,
    T,
    rate,
    dilation,
    padding,
    slope,
    out_slope,
    scale,
    srb,
    src,
    srt,
    sob,
    soc,
    sot,
    svb,
    svk,
    svf,
    NB,
    NPROG,
    C_IN: tl.constexpr,
    C_OUT: tl.constexpr,
    KSIZE: tl.constexpr,
    HAS_RES: tl.constexpr,
    RES_ACTIVATED: tl.constexpr,
    HAS_EXTRA: tl.constexpr,
    HAS_SPAN: tl.constexpr,
    ACTIVATE_INPUT: tl.constexpr,
    ACTIVATE_OUTPUT: tl.constexpr,
    SPLIT_OUT: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    FLATTEN: tl.constexpr,
):
    n_t = tl.cdiv(T, BLOCK_M)
    n_n: tl.constexpr = (C_OUT + BLOCK_N - 1) // BLOCK_N
    total = n_t * n_n * NB
    c = tl.arange(0, BLOCK_C)
    for tile in tl.range(tl.program_id(0), total, NPROG, flatten=FLATTEN):
        tt = tile % n_t
        rest = tile // n_t
        b = rest // n_n
        t0 = tt * BLOCK_M
        t = t0 + tl.arange(0, BLOCK_M)
        n = (rest % n_n) * BLOCK_N + tl.arange(0, BLOCK_N)
        w_cols = w_ptr + c[:, None] * C_OUT + n[None, :]
        w_ok = (c < C_IN)[:, None] & (n < C_OUT)[None, :]
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        for tap in range(0, KSIZE):
            a = x_desc.load([b, t0 + tap * dilation - padding, 0]).reshape(BLOCK_M, BLOCK_C)
            if ACTIVATE_INPUT:
                a = _leaky(a, slope)
            w = tl.load(w_cols + tap * C_IN * C_OUT, mask=w_ok, other=0.0)
            acc = tl.dot(a, w, acc, input_precision=DOT_PRECISION)
        _finish(
            acc,
            b.to(tl.int64),
            t,
            n,
            T,
            rate,
            slope,
            out_slope,
            scale,
            bias_ptr,
            res_ptr,
            extra_ptr,
            out_ptr,
            act_ptr,
            valid_ptr,
            srb,
            src,
            srt,
            sob,
            soc,
            sot,
            svb,
            svk,
            svf,
            C_OUT,
            HAS_RES,
            RES_ACTIVATED,
            HAS_EXTRA,
            HAS_SPAN,
            ACTIVATE_OUTPUT,
            SPLIT_OUT,
        )


@triton.jit
def pconv_ptr(
    x_ptr,
    w_ptr,
    bias_ptr,
    res_ptr,
    extra_ptr,
    out_ptr,
    act_ptr,
    valid_ptr,
    T,
    rate,
    dilation,
    padding,
    slope,
    out_slope,
    scale,
    sxb,
    sxc,
    sxt,
    srb,
    src,
    srt,
    sob,
    soc,
    sot,
    svb,
    svk,
    svf,
    NB,
    NPROG,
    C_IN: tl.constexpr,
    C_OUT: tl.constexpr,
    KSIZE: tl.constexpr,
    HAS_RES: tl.constexpr,
    RES_ACTIVATED: tl.constexpr,
    HAS_EXTRA: tl.constexpr,
    HAS_SPAN: tl.constexpr,
    ACTIVATE_INPUT: tl.constexpr,
    ACTIVATE_OUTPUT: tl.constexpr,
    SPLIT_OUT: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    FLATTEN: tl.constexpr,
):
    n_t = tl.cdiv(T, BLOCK_M)
    n_n: tl.constexpr = (C_OUT + BLOCK_N - 1) // BLOCK_N
    total = n_t * n_n * NB
    c = tl.arange(0, BLOCK_C)
    for tile in tl.range(tl.program_id(0), total, NPROG, flatten=FLATTEN):
        tt = tile % n_t
        rest = tile // n_t
        b = (rest // n_n).to(tl.int64)
        t = tt * BLOCK_M + tl.arange(0, BLOCK_M)
        n = (rest % n_n) * BLOCK_N + tl.arange(0, BLOCK_N)
        x_rows = x_ptr + b * sxb + c[None, :] * sxc
        w_cols = w_ptr + c[:, None] * C_OUT + n[None, :]
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        for tap in range(0, KSIZE):
            s = t + (tap * dilation - padding)
            a = tl.load(x_rows + s[:, None] * sxt, mask=((s >= 0) & (s < T))[:, None] & (c < C_IN)[None, :], other=0.0)
            if ACTIVATE_INPUT:
                a = _leaky(a, slope)
            w = tl.load(w_cols + tap * C_IN * C_OUT, mask=(c < C_IN)[:, None] & (n < C_OUT)[None, :], other=0.0)
            acc = tl.dot(a, w, acc, input_precision=DOT_PRECISION)
        _finish(
            acc,
            b,
            t,
            n,
            T,
            rate,
            slope,
            out_slope,
            scale,
            bias_ptr,
            res_ptr,
            extra_ptr,
            out_ptr,
            act_ptr,
            valid_ptr,
            srb,
            src,
            srt,
            sob,
            soc,
            sot,
            svb,
            svk,
            svf,
            C_OUT,
            HAS_RES,
            RES_ACTIVATED,
            HAS_EXTRA,
            HAS_SPAN,
            ACTIVATE_OUTPUT,
            SPLIT_OUT,
        )


# (C, samples per frame, k, d, act_in, residual): the first conv of a pair (rows come activated, output activated),
# the second (residual activated), the k=3 block's forms with the input activated in the kernel
LAYERS = [
    (c, r, k, d, act, res)
    for c, r in ((64, 120), (32, 240), (16, 480))
    for k, d, act, res in ((3, 1, 1, 0), (3, 1, 0, 1), (7, 3, 0, 0), (7, 1, 0, 1), (11, 5, 0, 0), (11, 1, 0, 1))
]


def variants(c, k, act):
    yield ("default", None)
    seen = set()
    for bm, st, w in itertools.product((64, 128, 256), (0, 2, 3), (4, 8)):
        if bm == 64 and w == 8:
            continue
        cfg = dict(BLOCK_M=bm, BLOCK_N=min(c, 64), BLOCK_C=max(16, c), num_warps=w, num_stages=1)
        if st:
            cfg["STAGES"] = st
        key = tuple(sorted(cfg.items()))
        if key not in seen:
            seen.add(key)
            yield ("tile", cfg)
    for bm, w, ns, per, fl in itertools.product((128, 256), (4, 8), (2, 3), (2, 4), (True,)):
        yield (
            "persist",
            dict(
                BLOCK_M=bm, BLOCK_N=min(c, 64), BLOCK_C=max(16, c), num_warps=w, num_stages=ns, PER_SM=per, FLATTEN=fl
            ),
        )


def make(c, r, k):
    t = L * r
    g = torch.Generator(device="cuda").manual_seed(c * 100 + k)
    x = torch.randn(B, t, c, device="cuda", dtype=DT, generator=g).transpose(1, 2)
    res = torch.randn(B, t, c, device="cuda", dtype=DT, generator=g).transpose(1, 2)
    w = (torch.randn(k, c, c, device="cuda", generator=g) / (c * k) ** 0.5).to(DT)
    bias = torch.randn(c, device="cuda", dtype=DT, generator=g) * 0.1
    valid = torch.tensor([[0, L]] * B, device="cuda").unsqueeze(-1).expand(-1, -1, L).contiguous()
    return x, res, w, bias, valid


def runner(layer, kind, cfg, data):
    c, r, k, d, act, hasres = layer
    x, res, w, bias, valid = data
    pad = (k - 1) * d // 2
    resid = res if hasres else None
    if kind != "persist":
        return lambda: _triton_forward(
            x, w, bias, resid, valid, r, d, pad, 0.1, bool(act), True, config=cfg, residual_activated=bool(hasres)
        )
    cfg = dict(cfg)
    per, flatten = cfg.pop("PER_SM"), cfg.pop("FLATTEN")
    nprog = SMS * per
    from batchvoc.engines.triton_runtime import channels_last_empty, span_launch_args

    T = x.shape[2]
    out = channels_last_empty(B, c, T, x)
    vv, vs, has_span = span_launch_args(valid, x)
    rr = resid if hasres else out
    flags = dict(
        C_IN=c,
        C_OUT=c,
        KSIZE=k,
        HAS_RES=bool(hasres),
        RES_ACTIVATED=bool(hasres),
        HAS_EXTRA=False,
        HAS_SPAN=has_span,
        ACTIVATE_INPUT=bool(act),
        ACTIVATE_OUTPUT=True,
        SPLIT_OUT=False,
        DOT_PRECISION="tf32",
        FLATTEN=flatten,
        **cfg,
    )
    params = (w, bias, rr, out, out, out, vv)
    scal = (r, d, pad, 0.1, 0.1, 1.0)
    strides = (*rr.stride(), *out.stride(), *vs)
    if c >= 32:
        desc = TensorDescriptor.from_tensor(x.transpose(1, 2), [1, cfg["BLOCK_M"], cfg["BLOCK_C"]])
        return lambda: (pconv_tma[(nprog,)](desc, *params, T, *scal, *strides, B, nprog, **flags), out)[1]
    return lambda: (pconv_ptr[(nprog,)](x, *params, T, *scal, *x.stride(), *strides, B, nprog, **flags), out)[1]


def jobs():
    return [(layer, kind, cfg) for layer in LAYERS for kind, cfg in variants(layer[0], layer[2], layer[4])]


def main():
    mode = sys.argv[1]
    all_jobs = jobs()
    if mode == "compile":
        part, n = int(sys.argv[2]), int(sys.argv[3])
        data = {}
        for i, (layer, kind, cfg) in enumerate(all_jobs):
            if i % n != part:
                continue
            key = layer[:3]
            if key not in data:
                data.clear()
                data[key] = make(*key)
            try:
                runner(layer, kind, cfg, data[key])()
            except Exception as exc:
                print("compile fail", layer, kind, cfg, type(exc).__name__, str(exc)[:100], flush=True)
        torch.cuda.synchronize()
        return
    results = []
    data_key, data = None, None
    ref = None
    for layer, kind, cfg in all_jobs:
        if layer[:3] != data_key:
            data_key, data = layer[:3], make(*layer[:3])
        try:
            fn = runner(layer, kind, cfg, data)
            y = fn().float()
            if kind == "default":
                ref = y.clone()
            err = ((y - ref).abs().max() / ref.abs().max()).item()
            ms = do_bench(fn, warmup=10, rep=40)
        except Exception as exc:
            print("fail", layer, kind, cfg, type(exc).__name__, str(exc)[:100], flush=True)
            continue
        results.append(dict(layer=layer, kind=kind, cfg=cfg, ms=ms, err=err))
    json.dump(results, open(sys.argv[2], "w"), indent=0)
    print(f"{'C':>3} {'k':>3} {'d':>2} act res | default | best tile            | best persistent")
    tot = dict(default=0, tile=0, persist=0)
    for layer in LAYERS:
        rows = [x for x in results if tuple(x["layer"]) == layer]
        dflt = next((x for x in rows if x["kind"] == "default"), None)
        if not dflt:
            continue
        bt = min((x for x in rows if x["kind"] in ("tile", "default")), key=lambda x: x["ms"])
        bp = min((x for x in rows if x["kind"] == "persist" and x["err"] < 1e-2), key=lambda x: x["ms"], default=None)
        tot["default"] += dflt["ms"]
        tot["tile"] += bt["ms"]
        tot["persist"] += min(bt["ms"], bp["ms"] if bp else 9)
        c, r, k, d, act, res = layer
        bad = [x for x in rows if x["err"] > 1e-2]
        print(
            f"{c:>3} {k:>3} {d:>2} {act:>3} {res:>3} | {dflt['ms']:.3f} | {bt['ms']:.3f} {bt['cfg']} | "
            f"{bp['ms'] if bp else float('nan'):.3f} {bp['cfg'] if bp else ''} bad={len(bad)}",
            flush=True,
        )
    print(f"sum ms: default {tot['default']:.3f} best tile {tot['tile']:.3f} best of both {tot['persist']:.3f}")


if __name__ == "__main__":
    main()
