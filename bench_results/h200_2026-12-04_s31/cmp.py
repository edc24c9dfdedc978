"""Per-kernel ms per forward of profile_engines.py's engines side by side (largest differences first)."""

import json
import sys

rows = json.load(open(sys.argv[1]))
names = [r["engine"] for r in rows]
tops = [{n: (ms, k) for n, ms, k in r["top"]} for r in rows]
for r in rows:
    print(
        f"{r['engine']:28s} wall {r['wall_ms']:.2f} kernels {r['kernel_ms']:.2f} launches {r['launches']}",
        {k: round(v, 2) for k, v in r["classes"].items()},
    )
allk = set().union(*tops)
base = tops[0]
diff = sorted(allk, key=lambda n: -max(abs(t.get(n, (0, 0))[0] - base.get(n, (0, 0))[0]) for t in tops))
print("  ".join(f"{n[:10]:>10s}" for n in names))
for n in diff[:30]:
    print("  ".join(f"{t.get(n, (0, 0))[0]:6.3f}x{t.get(n, (0, 0))[1]:<3d}" for t in tops), n[:100])
