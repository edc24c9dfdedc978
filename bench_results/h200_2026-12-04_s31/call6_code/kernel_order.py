"""The kernel order of the two wrappers (inductor's output code in dump.log, the package's wrapper .cpp), as events."""

import json
import re

W = [line for line in open([f for f in __import__("os").listdir(".") if f.endswith("wrapper.cpp")][0])]
# aoti events in run_impl order
ev_a = []
for line in W:
    m = re.search(r"aoti_torch_cuda_convolution\(([^,]*(?:\([^)]*\)[^,]*)*),\s*([A-Za-z0-9_]+)", line)
    if m and "aoti_torch_cuda_convolution(" in line:
        arrs = re.findall(r"std::array<int64_t, 2>\{(\d+)L, (\d+)L\}", line)
        ev_a.append(("CONV", m.group(2), arrs[1], arrs[2]))
        continue
    m = re.search(r"^\s*call_(triton_[a-z_0-9]+)\(", line)
    if m:
        ev_a.append(("TRI", m.group(1)))
        continue
    m = re.search(r"^\s*call_(lrelu_conv[a-z_0-9]*|conv_to_one[a-z_0-9]*)\(", line)
    if m:
        ev_a.append(("OURS", m.group(1)))
lines = open("dump.log").read().split("\n")
# find the inductor call() with 39 convs: take lines of the last 'def call(' block containing convs
code = [re.sub(r"^.*\[__output_code\] ?", "", line) for line in lines if "[__output_code]" in line]
starts = [i for i, line in enumerate(code) if line.strip().startswith("def call(")]
best = None
for s in starts:
    e = next(
        (
            j
            for j in range(s + 1, len(code))
            if code[j].startswith("def ") or code[j].startswith("class ") or code[j].startswith("async_compile")
        ),
        len(code),
    )
    n = sum("extern_kernels.convolution(" in x for x in code[s:e])
    if n == 39:
        best = (s, e)
s, e = best
ev_i = []
for line in code[s:e]:
    if "extern_kernels.convolution(" in line:
        m = re.search(r"padding=\((\d+), (\d+)\), dilation=\((\d+), (\d+)\)", line)
        w = re.search(r"extern_kernels\.convolution\(.*?(arg\d+_1)", line)
        ev_i.append(("CONV", w.group(1), m.group(1, 2), m.group(3, 4)))
        continue
    m = re.search(r"(triton_[a-z_0-9]+)\.run\(", line)
    if m:
        ev_i.append(("TRI", m.group(1)))
        continue
    m = re.search(r"torch\.ops\.batchvoc\.([a-z_0-9]+)", line)
    if m and "=" in line:
        ev_i.append(("OURS", m.group(1)))
print(len(ev_a), len(ev_i))

json.dump(dict(a=ev_a, i=ev_i), open("ev.json", "w"))
