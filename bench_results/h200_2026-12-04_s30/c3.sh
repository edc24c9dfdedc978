set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
timeout 560 python3 benchmarks/gpu_clocks.py $OUT/clk_bv.csv -- python3 -m batchvoc.bench preset=bigvgan_v2_24khz_100band_256x frames=938 batch=[16] utterances=32 precisions=[fp16] 'backends=[inductor,aoti]' out=$OUT/bv.json > $OUT/bv.log 2>&1
echo rc=$?
grep -A4 "^mode " $OUT/bv.log | cut -c1-110; grep "MHz" $OUT/bv.log | tail -4
