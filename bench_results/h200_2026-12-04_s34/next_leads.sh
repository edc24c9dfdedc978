# For session 35 (not yet run), ~6 min on a fresh machine: next_leads.py's packages, then the four engines alternated.
set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
S=bench_results/h200_2026-12-04_s34
for v in A C; do timeout 200 python3 $S/next_leads.py build $v > $OUT/build_$v.log 2>&1; echo build $v rc=$?; grep -e "^$v " -e patched $OUT/build_$v.log; done
timeout 280 python3 $S/next_leads.py measure $OUT > $OUT/measure.log 2>&1; echo measure rc=$?
grep -v -e Warning -e random -e warn $OUT/measure.log | tail -8
