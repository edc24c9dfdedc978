"""Session 31: Inductor's generated code for gsv_v4 fp16 [16, 1000] on the GPU, inductor (Python wrapper, from
TORCH_LOGS=output_code) and aoti (the package's wrapper .cpp), for reading the two kernel orders side by side.

    TORCH_LOGS=output_code PYTHONPATH=. python3 dump.py OUT_DIR
"""

import batchvoc  # noqa: F401  before torch (native.py)

# isort: split

import glob
import sys
import zipfile

from batchvoc.runtime import EngineOptions, build_runtime

out = sys.argv[1]
for backend in ("inductor", "aoti"):
    print(f"=== building {backend}", flush=True)
    build_runtime("gsv_v4", "random", EngineOptions(backend, "fp16", 16, None, "cuda", "/tmp/bvc", {}))
    print(f"=== built {backend}", flush=True)
for pk in glob.glob("/tmp/bvc/aoti/*.pt2"):
    z = zipfile.ZipFile(pk)
    for n in z.namelist():
        if n.endswith(".cpp") or n.endswith(".json"):
            open(f"{out}/{n.split('/')[-1]}", "wb").write(z.read(n))
            print("wrote", n)
