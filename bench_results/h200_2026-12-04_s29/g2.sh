set -u
bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1
S=bench_results/h200_2026-12-04_s29
R=$PWD
export PYTHONPATH=/tmp/site:$R/$S/gclog BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1 GCLOG=$OUT/gc.log
cd .dev/s29
B="python3 -m batchvoc.bench batch=[16] backends=[inductor]"
python3 $R/benchmarks/gpu_clocks.py $OUT/clk_g.csv -- $B preset=gsv_v4 utterances=256 precisions=[fp16,bf16] out=$OUT/g.json > $OUT/g.log 2>&1
echo "== gsv done $(date +%T)" >> $OUT/gc.log
python3 $R/benchmarks/gpu_clocks.py $OUT/clk_v.csv -- $B preset=bigvgan_v2_24khz_100band_256x frames=938 utterances=32 precisions=[fp16,bf16] out=$OUT/v.json > $OUT/v.log 2>&1
echo "== bigvgan done $(date +%T)" >> $OUT/gc.log
timeout 200 python3 -m batchvoc.bench preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16] backends=[aoti] out=$OUT/o.json > $OUT/o.log 2>&1
python3 -c "import batchvoc; print(batchvoc.__file__)"
for f in g v o; do echo "== $f"; grep -A5 "^mode " $OUT/$f.log | cut -c1-100; grep "MHz" $OUT/$f.log | tail -3; done
grep -c . $OUT/gc.log; awk '$6+0 > 20' $OUT/gc.log | tail -15
