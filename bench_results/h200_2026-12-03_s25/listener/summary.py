import collections
import json
import sys

for path in sys.argv[1:]:
    rows = [json.loads(line) for line in open(path)]
    errs = [r for r in rows if "error" in r]
    rows = [r for r in rows if "error" not in r and not r["hit"]]
    print(f"== {path}: {len(rows)} compiles, {sum(r['total_ms'] for r in rows) / 1e3:.1f} s summed, errors {errs[:2]}")
    if not rows:
        continue
    t0 = min(r["end"] - r["total_ms"] / 1e3 for r in rows)
    print(f"span {max(r['end'] for r in rows) - t0:.1f} s; processes {len({r['pid'] for r in rows})}")
    by = collections.defaultdict(list)
    for r in rows:
        by[r["name"]].append(r["total_ms"])
    for name, ts in sorted(by.items(), key=lambda kv: -sum(kv[1]))[:12]:
        print(f"  {name[:40]:40s} n={len(ts):3d} sum={sum(ts) / 1e3:7.1f}s max={max(ts) / 1e3:6.1f}s")
    for r in sorted(rows, key=lambda r: -r["total_ms"])[:8]:
        st = " ".join(f"{k}={v / 1e3:.1f}" for k, v in r["stages"].items())
        c = {k: v for k, v in r["consts"].items() if k.isupper()}
        took, ir = r["total_ms"] / 1e3, r["ir_ms"] / 1e3
        print(f"  {took:6.1f}s {r['name'][:30]} end+{r['end'] - t0:.0f}s ir={ir:.1f} {st} {c}")
