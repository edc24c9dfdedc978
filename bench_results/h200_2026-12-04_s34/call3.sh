# Session 34, call 3: ab_launch.py: packages without (A) and with (B) Triton's shared-memory launch attributes.
set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
S=bench_results/h200_2026-12-04_s34
for v in A B; do timeout 200 python3 $S/ab_launch.py build $v > $OUT/build_$v.log 2>&1; echo build $v rc=$?; grep "^$v " $OUT/build_$v.log; done
timeout 200 python3 $S/ab_launch.py measure $OUT > $OUT/measure.log 2>&1; echo measure rc=$?
grep -v -e Warning -e random -e warn $OUT/measure.log | tail -6
