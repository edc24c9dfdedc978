# Session 34, call 2: is aoti's gap the package or the process that built it? The bench twice on one fresh
# machine: (a) aoti first, its package built inside the bench's process (as every earlier session measured it);
# (b) a new process, the package loaded. Then stream_profile.py after the check's fewer launches (roundtrip.audio_counts).
set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
S=bench_results/h200_2026-12-04_s34
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv,noheader
for run in built loaded; do
  order=$([ $run = built ] && echo "[aoti,inductor]" || echo "[inductor,aoti]")
  timeout 260 python3 -m batchvoc.bench preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16] \
    backends=$order out=$OUT/bench_$run.json > $OUT/bench_$run.log 2>&1; echo bench $run rc=$?
  grep -v -e Warning -e "random weights" $OUT/bench_$run.log | tail -5
done
timeout 120 python3 $S/stream_profile.py $OUT/sp inductor > $OUT/sp.log 2>&1; echo stream rc=$?
grep -v -e Warning -e random $OUT/sp.log | tail -5
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader
cd $OUT && tar czf traces.tgz sp/*.json 2>/dev/null; rm -rf sp/*.json
