set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_stream.py -m gpu > $OUT/gputests.log 2>&1; echo tests rc=$?; tail -3 $OUT/gputests.log
timeout 330 python3 bench_results/h200_2026-12-04_s31/launches.py $OUT/launches2.json > $OUT/launches2.log 2>&1; echo rc=$?
grep "clocks:\|^{" $OUT/launches2.log | cut -c1-300
