"""batchvoc.bench with a periodic stack dump (faulthandler) to see where a slow build waits."""
import faulthandler
import runpy
import sys

faulthandler.dump_traceback_later(int(sys.argv.pop(1)), repeat=True)
sys.argv[0] = "batchvoc.bench"
runpy.run_module("batchvoc.bench", run_name="__main__")
