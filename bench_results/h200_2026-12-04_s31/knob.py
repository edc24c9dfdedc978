"""Session 31, call 7: does the package's kernel order come from Inductor's peak-memory reordering? The traced
inductor engine built as usual, then an aoti package built with torch._inductor.config.reorder_for_peak_memory
off (a fresh cache), then per-forward times alternating (6 rounds of 16 forwards each).

    PYTHONPATH=. python3 knob.py
"""

import batchvoc  # noqa: F401  before torch (native.py)

# isort: split

import statistics

import torch

from batchvoc.bench import timed
from batchvoc.runtime import EngineOptions, build_runtime


def main() -> None:
    rts = {"traced": build_runtime("gsv_v4", "random", EngineOptions("inductor", "fp16", 16, None, "cuda",
                                                                      "/tmp/bvc", {"kernels": "traced"}))}  # fmt: skip
    torch._inductor.config.reorder_for_peak_memory = False
    rts["aoti_no_reorder"] = build_runtime("gsv_v4", "random", EngineOptions("aoti", "fp16", 16, None, "cuda",
                                                                              "/tmp/bvc_knob", {}))  # fmt: skip
    rt0 = rts["traced"]
    b, length = rt0.plan.shape
    mel = torch.randn(b, rt0.preset.n_mels, length, device="cuda") + rt0.preset.silence
    valid = torch.tensor([0, length], device="cuda").repeat(b, 1)
    times = {k: [] for k in rts}
    with torch.inference_mode():
        outs = {k: rt.engine(mel, valid).float() for k, rt in rts.items()}
        a, t = outs["aoti_no_reorder"], outs["traced"]
        print("rel L2 aoti vs traced:", float((a - t).norm() / t.norm()), flush=True)
        for r in range(6):
            for k in list(rts)[:: 1 if r % 2 == 0 else -1]:
                rt = rts[k]
                times[k].append(timed(lambda rt=rt: [rt.engine(mel, valid) for _ in range(16)], torch.device("cuda"))[0]
                                * 1000 / 16)  # fmt: skip
            print(r, {k: round(v[-1], 3) for k, v in times.items()}, flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("median ms per forward:", med, "aoti/traced:", round(med["aoti_no_reorder"] / med["traced"], 4))


if __name__ == "__main__":
    main()
