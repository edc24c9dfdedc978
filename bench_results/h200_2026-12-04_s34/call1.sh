# Session 34, call 1: (a) session 33's launch_attrs.py: the package's kernels loaded with Triton's shared-memory
# attributes, both engines profiled; (b) the bench with inductor and aoti (aoti loads the package (a) built:
# same key); (c) stream_profile.py: the bench's time beyond the engine's forwards.
set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
S=bench_results/h200_2026-12-04_s34
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu --format=csv,noheader
timeout 260 python3 bench_results/h200_2026-12-04_s33/launch_attrs.py $OUT/la gsv_v4 16 8 > $OUT/la.log 2>&1; echo launch_attrs rc=$?
grep -v -e Warning -e random $OUT/la.log | grep -v "^ *warn" | sed -n '/patched/p;/span_ms/,/per name/p'; grep -A8 "per name" $OUT/la.log | tail -8
timeout 200 python3 -m batchvoc.bench preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16] \
  backends=[inductor,aoti] > $OUT/bench.log 2>&1; echo bench rc=$?; cp bench.json $OUT/ 2>/dev/null
grep -v -e Warning -e "random weights" $OUT/bench.log | tail -5
timeout 120 python3 $S/stream_profile.py $OUT/sp inductor > $OUT/sp.log 2>&1; echo stream rc=$?
grep -v -e Warning -e random $OUT/sp.log | tail -6
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader
cd $OUT && tar czf traces.tgz la/*.json sp/*.json 2>/dev/null; rm -rf la/*.json sp/*.json; ls
