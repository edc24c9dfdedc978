# Session 34, call 4: the code both engines run, to compare what the TMA-copying convolutions (ours and cuDNN's) are
# handed: the aoti package's C++ wrapper and Inductor's Python wrapper of the same gsv_v4 fp16 engine, 16 x 1000.
set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 BATCHVOC_CACHE=/tmp/bvc
timeout 200 python3 - > $OUT/build.log 2>&1 <<'PY'
import batchvoc  # noqa: F401
import torch
from batchvoc.device_defaults import default_row_length
from batchvoc.models import load_vocoder
from batchvoc.runtime import EngineOptions, assemble, plan_chunks
model, preset = load_vocoder("gsv_v4", "random")
plan = plan_chunks(model, preset, 1, None, default_row_length(torch.device("cuda"), preset.frame_rate))
for backend in ("aoti", "inductor"):
    rt = assemble(model, preset, EngineOptions(backend, "fp16", 16, plan.chunk_frames, "cuda", "/tmp/bvc", {}),
                  shape=(16, plan.chunk_frames + 2 * plan.context))
    print(backend, rt.engine.load_path, rt.ready_s)
PY
echo build rc=$?; tail -2 $OUT/build.log
mkdir -p $OUT/code && cd $OUT/code
for p in /tmp/bvc/aoti/*.pt2; do python3 -c "import zipfile,sys;z=zipfile.ZipFile(sys.argv[1]);[open(n.replace('/','_'),'wb').write(z.read(n)) for n in z.namelist() if n.endswith(('.cpp','.json'))]" $p; done
grep -rl "lrelu_conv_tma" /tmp/bvc/inductor --include=*.py | head -3 | while read f; do cp $f inductor_$(basename $f); done
ls -la; cd .. && tar czf code.tgz code && rm -rf code
