"""batchvoc.bench with cuDNN's algorithm search over every algorithm (benchmark_limit 0) instead of its first 10."""
import runpy
import sys

import torch

torch.backends.cudnn.benchmark_limit = int(sys.argv.pop(1))
print("cudnn.benchmark_limit", torch.backends.cudnn.benchmark_limit, flush=True)
sys.argv[0] = "batchvoc.bench"
runpy.run_module("batchvoc.bench", run_name="__main__")
