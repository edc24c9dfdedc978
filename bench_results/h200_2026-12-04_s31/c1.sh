set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm --format=csv,noheader
timeout 500 python3 bench_results/h200_2026-12-04_s31/probe.py $OUT/probe.json 8 > $OUT/probe.log 2>&1
echo rc=$?
grep -v Warning $OUT/probe.log | tail -16
