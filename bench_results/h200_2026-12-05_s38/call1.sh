# Session 38, call 1: per-kernel-name aoti vs inductor, then user-managed constants (gap2.py)
set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD:$PWD/bench_results/h200_2026-12-04_s34:$PWD/bench_results/h200_2026-12-05_s37 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,clocks.sm,power.draw --format=csv,noheader
timeout 500 python3 bench_results/h200_2026-12-05_s38/gap2.py $OUT > $OUT/gap2.log 2>&1; echo gap2 rc=$?
grep -v -e Warning -e "random weights" -e warn -e "aoti: building" $OUT/gap2.log | tail -45
