set -u
bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1
S=bench_results/h200_2026-12-04_s29
export PYTHONPATH=/tmp/site:$PWD/$S/gclog:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1 GCLOG=$OUT/gc.log GCTYPES=1
python3 benchmarks/gpu_clocks.py $OUT/clk_ia.csv -- python3 -m batchvoc.bench preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16] backends=[inductor,aoti] out=$OUT/ia.json > $OUT/ia.log 2>&1
unset GCLOG
timeout 170 python3 -m pytest -q -p no:cacheprovider tests/test_stream.py tests/test_build.py tests/test_device_defaults.py -k "gpu or device_default or row" > $OUT/tests.log 2>&1; tail -3 $OUT/tests.log
grep -A4 "^mode " $OUT/ia.log | cut -c1-100; grep "MHz" $OUT/ia.log | tail -3
awk '$6+0 > 30' $OUT/gc.log | cut -c1-400 | tail -12
