set -u
bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
ROOT=$PWD
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm --format=csv,noheader
cd benchmarks
for c in 16 32 64; do python3 first_convs.py --channels $c --compile-only > $OUT/cc$c.log 2>&1 & done
wait
tail -3 $OUT/cc*.log
python3 first_convs.py > $OUT/first_convs.log 2>&1; cat $OUT/first_convs.log
cd $ROOT
B="preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16] backends=[inductor]"
python3 benchmarks/gpu_clocks.py $OUT/clk_new.csv -- python3 -m batchvoc.bench $B out=$OUT/new.json > $OUT/new.log 2>&1
tail -12 $OUT/new.log
(cd .dev/old && PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc_old python3 $ROOT/benchmarks/gpu_clocks.py $OUT/clk_old.csv -- python3 -m batchvoc.bench $B out=$OUT/old.json > $OUT/old.log 2>&1)
tail -12 $OUT/old.log
grep -h "x real\|inductor\|eager" $OUT/new.log $OUT/old.log | tail -8
