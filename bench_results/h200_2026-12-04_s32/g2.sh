set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
P=bench_results/h200_2026-12-04_s32/order.py
timeout 150 env ORDER_AOTI_BENCHMARK=1 python3 $P $OUT/a.json aoti:default,default > $OUT/a.log 2>&1; echo A rc=$?
timeout 110 python3 $P $OUT/b.json aoti:default,default > $OUT/b.log 2>&1; echo B rc=$?
grep -A3 "^variant" $OUT/a.log $OUT/b.log; grep "built in" $OUT/a.log $OUT/b.log
