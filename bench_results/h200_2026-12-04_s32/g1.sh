set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm --format=csv,noheader
timeout 540 env ORDER_CUDNN=${ORDER_CUDNN:-as-built} ORDER_AOTI_BENCHMARK=${ORDER_AOTI_BENCHMARK:-} python3 benchmarks/gpu_clocks.py $OUT/clk.csv -- python3 bench_results/h200_2026-12-04_s32/order.py $OUT/order.json "${1:-default,off,lpmf,bfs,dfs,aoti:default}" > $OUT/order.log 2>&1
echo rc=$?
grep -v "^\[\|Warning\|warn" $OUT/order.log | tail -25 | cut -c1-200
