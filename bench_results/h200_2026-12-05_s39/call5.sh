# Session 39, call 5: aoti packages replay CUDA graphs at small batches (engines/cuda_graph.py): the GPU test, then
# batch 1 (10 s rows), gsv_v4 fp16: inductor (CUDA graphs), aoti (graphs, the new default), aoti without graphs.
set -u
START=$(date +%s)
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 BATCHVOC_CACHE=/tmp/bvc
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv,noheader
timeout 120 python3 -m pytest -q -p no:cacheprovider -s tests/engines/test_gpu_aoti_kernels.py -k cuda_graph > $OUT/test.log 2>&1
echo "test rc=$? at $(( $(date +%s) - START )) s"; grep -e "SNR" -e "passed" -e "failed" -e "Error" $OUT/test.log | tail -5
timeout 110 python3 -m batchvoc.bench preset=gsv_v4 batch=[1] utterances=16 precisions=[fp16] \
  "backends=[inductor,aoti,'aoti:cuda_graphs=false']" out=$OUT/gsv_v4_b1.json > $OUT/gsv_v4_b1.log 2>&1
echo "bench rc=$? at $(( $(date +%s) - START )) s"; grep -A5 "^mode " $OUT/gsv_v4_b1.log; grep -i "error" $OUT/gsv_v4_b1.log | tail -3
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader
