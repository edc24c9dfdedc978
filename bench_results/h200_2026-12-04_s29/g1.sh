set -u
bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm,temperature.gpu --format=csv,noheader
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/engines/test_inductor.py -k gpu > $OUT/test_gpu.log 2>&1; tail -2 $OUT/test_gpu.log
B="python3 -m batchvoc.bench preset=gsv_v4 batch=[16] utterances=256 backends=[inductor]"
python3 benchmarks/gpu_clocks.py $OUT/clk_a.csv -- $B precisions=[fp16,bf16] out=$OUT/a.json > $OUT/a.log 2>&1
python3 benchmarks/gpu_clocks.py $OUT/clk_b.csv -- $B precisions=[fp16] window=976 out=$OUT/b.json > $OUT/b.log 2>&1
python3 benchmarks/gpu_clocks.py $OUT/clk_c.csv -- $B precisions=[fp16] out=$OUT/c.json > $OUT/c.log 2>&1
for f in a b c; do echo "== $f"; grep -A5 "^mode " $OUT/$f.log; grep -i "busy\|MHz" $OUT/$f.log | tail -4; done
