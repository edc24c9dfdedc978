set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
timeout 520 python3 benchmarks/gpu_clocks.py $OUT/clk.csv -- python3 -m batchvoc.bench preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16] 'backends=[aoti,inductor]' out=$OUT/ai.json > $OUT/ai.log 2>&1
echo rc=$?
grep -A4 "^mode " $OUT/ai.log | cut -c1-110; grep "MHz" $OUT/ai.log | tail -4
