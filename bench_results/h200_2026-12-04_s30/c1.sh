set -u
bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
timeout 540 python3 benchmarks/gpu_clocks.py $OUT/clk_ma.csv -- python3 -m batchvoc.bench preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16] 'backends=[inductor,"inductor:mode=max-autotune-no-cudagraphs"]' out=$OUT/ma.json > $OUT/ma.log 2>&1
echo rc=$?
grep -c "AUTOTUNE" $OUT/ma.log
grep -A5 "^mode " $OUT/ma.log | cut -c1-110; grep "MHz" $OUT/ma.log | tail -4
