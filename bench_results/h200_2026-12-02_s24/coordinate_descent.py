"""batchvoc.bench with Inductor's coordinate-descent tuning of its generated kernels on."""
import runpy
import sys

import torch._inductor.config as cfg

cfg.coordinate_descent_tuning = True
print("coordinate_descent_tuning", cfg.coordinate_descent_tuning, flush=True)
sys.argv[0] = "batchvoc.bench"
runpy.run_module("batchvoc.bench", run_name="__main__")
