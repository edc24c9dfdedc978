"""Build the gsv_v4 fp16 inductor engine, dumping every thread's stack every 10 s into argv[1]."""
import sys
import threading
import time
import traceback

out = open(sys.argv[1], "w")
main = threading.get_ident()
t0 = time.time()


def sample():
    while True:
        time.sleep(5)
        frame = sys._current_frames().get(main)
        out.write(f"=== {time.time() - t0:.0f} s\n" + "".join(traceback.format_stack(frame)[-25:]))
        out.flush()


threading.Thread(target=sample, daemon=True).start()
t = time.time()
from batchvoc.runtime import EngineOptions, build_runtime  # noqa: E402

rt = build_runtime("gsv_v4", "random", EngineOptions(backend="inductor", precision="fp16", batch=16,
                                                     cache_dir=sys.argv[2]))
print("built in", round(time.time() - t, 1), "s; build_s", round(rt.engine.build_s, 1), flush=True)
