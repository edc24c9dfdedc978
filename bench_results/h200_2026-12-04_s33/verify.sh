# Session 33, calls 6-7: after the compiled descriptors take whole rows (ops.wide_rows_in_compiled_descriptors), and
# (call 7) the conv kernels slopes and scale compile-time constants: the bench of gsv_v4 fp16 with inductor and aoti
# in one process, then both engines kernels profiled (from the caches).
set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv,noheader
timeout 330 python3 -m batchvoc.bench preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16] \
  backends=[inductor,aoti] > $OUT/bench.log 2>&1; echo bench rc=$?; cp bench.json $OUT/ 2>/dev/null
grep -v -e Warning -e "random weights" $OUT/bench.log | tail -12
timeout 200 python3 bench_results/h200_2026-12-04_s33/kernel_profile.py $OUT/p gsv_v4 16 8 > $OUT/p.log 2>&1; echo profile rc=$?
grep -v -e Warning -e random $OUT/p.log | sed -n '/span_ms/,/per name/p'; grep -A6 "per name" $OUT/p.log | grep -i "tma\|lrelu"
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader
