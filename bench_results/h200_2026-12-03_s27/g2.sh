set -u
bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
ROOT=$PWD
B="preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16]"
(cd .dev/old && PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc_old python3 $ROOT/benchmarks/gpu_clocks.py $OUT/clk_old.csv -- python3 -m batchvoc.bench $B backends=[inductor] out=$OUT/old.json > $OUT/old.log 2>&1)
python3 benchmarks/gpu_clocks.py $OUT/clk_new.csv -- python3 -m batchvoc.bench $B 'backends=[inductor,"inductor:fused_max_channels=128"]' out=$OUT/new.json > $OUT/new.log 2>&1
for f in old new; do echo "== $f"; grep -A8 "^mode " $OUT/$f.log; grep -A6 "busy phases" $OUT/$f.log; done
