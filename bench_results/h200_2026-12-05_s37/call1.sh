# Session 37, call 1 (~8 min on a fresh nvidia-h200): gap.py profile, then three capture attempts of the package.
set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD:$PWD/bench_results/h200_2026-12-04_s34 PYTHONUNBUFFERED=1
S=bench_results/h200_2026-12-05_s37
nvidia-smi --query-gpu=name,clocks.sm,power.draw --format=csv,noheader
timeout 330 python3 $S/gap.py profile $OUT > $OUT/profile.log 2>&1; echo profile rc=$?
grep -v -e Warning -e "random weights" -e warn $OUT/profile.log | tail -6
for m in global relaxed; do
  timeout 60 python3 $S/gap.py capture $m > $OUT/capture_$m.log 2>&1; echo capture $m rc=$?
  grep -e capture -e replay -e rror $OUT/capture_$m.log | head -6
done
CUDA_LAUNCH_BLOCKING=1 timeout 60 python3 $S/gap.py capture relaxed > $OUT/capture_blocking.log 2>&1
echo capture blocking rc=$?; grep -e capture -e replay -e rror -e "File " $OUT/capture_blocking.log | head -12
