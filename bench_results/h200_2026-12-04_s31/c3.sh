set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
timeout 520 python3 benchmarks/profile_engines.py --preset gsv_v4 --precision fp16 --batch 16 --engines inductor aoti "inductor:kernels=traced" --cache-dir /tmp/bvc --top 300 --calls 8 --out $OUT/prof.json > $OUT/prof.log 2>&1
echo rc=$?
python3 bench_results/h200_2026-12-04_s31/cmp.py $OUT/prof.json 2>&1 | cut -c1-200
